CREATE TABLE IF NOT EXISTS users (
    id         BIGSERIAL   PRIMARY KEY,
    email      TEXT        NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per welcome email actually sent: the idempotency record of the task.
CREATE TABLE IF NOT EXISTS sent_emails (
    email   TEXT        NOT NULL UNIQUE,
    task_id UUID        NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
