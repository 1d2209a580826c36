-- What each onboarding step did: one row per run of a step (the external calls it stands
-- for), so a step that ran twice shows twice.
CREATE TABLE IF NOT EXISTS onboarding_effects (
    task_id         TEXT    NOT NULL,
    step            TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    at              INTEGER NOT NULL DEFAULT (unixepoch())
);

-- Finished onboardings: written in the transaction that completes the task.
CREATE TABLE IF NOT EXISTS onboarded (
    task_id   TEXT    PRIMARY KEY,
    email     TEXT    NOT NULL,
    workspace TEXT    NOT NULL,
    credits   INTEGER NOT NULL
);
