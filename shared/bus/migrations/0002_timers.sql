-- Durable timers (SLA deadlines, payment due dates, default confirmations):
-- a row per pending deadline, fired by a scheduler loop that any number of
-- replicas may run, against the injected clock.

CREATE TABLE timers (
    kind        text        NOT NULL,
    key         text        NOT NULL,
    due_at      timestamptz NOT NULL,
    payload     jsonb       NOT NULL,
    correlation uuid,
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text,
    fired_at    timestamptz,
    PRIMARY KEY (kind, key)
);

CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL;
