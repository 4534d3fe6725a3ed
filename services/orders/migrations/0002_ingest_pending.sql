-- Integrator ingest, idempotent by (integrator, external id) and by body:
-- `digest` is the md5 of the message body as jsonb text (key order and
-- whitespace do not count). The first message under an external id is the
-- `first` row; a replay with the same digest changes nothing, one with
-- another digest is rejected on a row of its own so the original stays.
ALTER TABLE ingest_messages ADD COLUMN digest text NOT NULL DEFAULT '';
ALTER TABLE ingest_messages ADD COLUMN first boolean NOT NULL DEFAULT true;
ALTER TABLE ingest_messages DROP CONSTRAINT ingest_messages_pkey;
ALTER TABLE ingest_messages ADD PRIMARY KEY (integrator, external_id, digest);
CREATE UNIQUE INDEX ingest_messages_first ON ingest_messages (integrator, external_id) WHERE first;
CREATE INDEX ingest_messages_rejected ON ingest_messages (integrator, at) WHERE outcome = 'rejected';

-- Messages that arrived before their predecessor (the order they name, or
-- the shipment a receipt names), and every later message of the same order
-- queued behind them. Applied in arrival order (`seq`) in the transaction
-- that applies the predecessor, or rejected when `expires_at` passes.
CREATE TABLE ingest_pending (
    seq                 bigserial PRIMARY KEY,
    integrator          text NOT NULL,
    external_id         text NOT NULL,
    event               text NOT NULL,
    stage               smallint NOT NULL,
    order_external_id   text NOT NULL,
    waits_for           text NOT NULL,
    waits_field         text NOT NULL,
    payload             bytea NOT NULL,
    meta                jsonb NOT NULL,
    parked_at           timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    UNIQUE (integrator, external_id)
);
CREATE INDEX ingest_pending_order ON ingest_pending (integrator, order_external_id, stage, seq);
