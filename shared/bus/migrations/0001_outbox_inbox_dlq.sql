-- Delivery tables every service keeps in its own schema (the pool's search_path).

CREATE TABLE outbox (
    seq          bigserial   PRIMARY KEY,
    id           uuid        NOT NULL UNIQUE,
    subject      text        NOT NULL,
    event_type   text        NOT NULL,
    version      integer     NOT NULL,
    correlation  uuid        NOT NULL,
    causation    uuid,
    actor        jsonb,
    traceparent  text,
    tracestate   text,
    payload      jsonb       NOT NULL,
    -- business time from the injected clock
    occurred_at  timestamptz NOT NULL,
    -- database time: retention and `republish --since` use it, so a manual
    -- clock in tests cannot hide rows from either
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    -- bumped by a republish so JetStream's dedup window (which survives a
    -- purge) does not swallow the second copy; consumers dedup by `id`
    generation   integer     NOT NULL DEFAULT 0,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text
);

CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_recorded ON outbox (recorded_at);
CREATE INDEX outbox_correlation ON outbox (correlation);

-- Wakes the relay the moment a producing transaction commits (NOTIFY is
-- delivered on commit and folded per transaction); the relay also polls.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbp_outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT OR UPDATE OF sent_at ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    event_type   text        NOT NULL,
    subject      text        NOT NULL,
    correlation  uuid,
    causation    uuid,
    actor        jsonb,
    occurred_at  timestamptz,
    processed_at timestamptz NOT NULL DEFAULT now(),
    -- 'applied', or 'dead' when it went to the dead-letter queue
    outcome      text        NOT NULL DEFAULT 'applied',
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX inbox_correlation ON inbox (correlation);

CREATE TABLE dlq (
    id                  uuid        PRIMARY KEY,
    consumer            text        NOT NULL,
    event_id            uuid        NOT NULL,
    event_type          text        NOT NULL,
    subject             text        NOT NULL,
    headers             jsonb       NOT NULL,
    payload             bytea       NOT NULL,
    reason              text        NOT NULL,
    attempts            integer     NOT NULL,
    dead_at             timestamptz NOT NULL DEFAULT now(),
    replay_requested_at timestamptz,
    replayed_at         timestamptz,
    replay_outcome      text
);

CREATE INDEX dlq_pending_replay ON dlq (consumer, replay_requested_at)
    WHERE replay_requested_at IS NOT NULL AND replayed_at IS NULL;
