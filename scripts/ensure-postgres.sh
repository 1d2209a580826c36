#!/usr/bin/env bash
# Makes sure a PostgreSQL server accepts connections on 127.0.0.1:5432 with a `test`
# database for user `postgres`: starts the local cluster if it is stopped, installs it from
# Debian's packages if it is missing, and fails loudly if none of that works.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
DB=test

ready() { pg_isready -h "$HOST" -p "$PORT" -q 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "PostgreSQL client tools missing; installing postgresql from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

if ! ready; then
  if [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  else
    echo "no PostgreSQL cluster found; installing postgresql"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
fi

for _ in $(seq 1 60); do
  ready && break
  sleep 0.5
done
if ! ready; then
  echo "ERROR: PostgreSQL does not accept connections on $HOST:$PORT" >&2
  exit 1
fi

psql_su() {
  if psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
    psql -h "$HOST" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -tAc "$1"
  else
    su postgres -c "psql -p $PORT -d postgres -v ON_ERROR_STOP=1 -tAc \"$1\""
  fi
}

if ! psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
  # A fresh Debian cluster asks for passwords on TCP: trust loopback, as the tests expect.
  echo "enabling trust authentication for 127.0.0.1 (test machine)"
  hba=$(su postgres -c "psql -p $PORT -tAc 'SHOW hba_file'")
  sed -i "1i host all all 127.0.0.1/32 trust" "$hba"
  su postgres -c "psql -p $PORT -tAc 'SELECT pg_reload_conf()'" >/dev/null
  sleep 1
fi
if ! psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
  echo "ERROR: cannot connect as postgres@$HOST:$PORT without a password" >&2
  exit 1
fi
if [ "$(psql_su "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
  echo "creating database $DB"
  psql_su "CREATE DATABASE $DB"
fi
echo "PostgreSQL ready: postgres://postgres@$HOST:$PORT/$DB ($(psql -h "$HOST" -p "$PORT" -U postgres -d "$DB" -tAc 'SHOW server_version'))"
