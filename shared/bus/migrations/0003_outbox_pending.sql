-- Unsent rows are listed in a narrow queue of their own. Marking a row sent
-- deletes its queue entry instead of rewriting the wide outbox row (payload,
-- five index entries), which cost as much as writing the event in the first
-- place. A row is unsent iff its seq is in outbox_pending.

CREATE TABLE outbox_pending (
    seq bigint PRIMARY KEY
);

INSERT INTO outbox_pending (seq) SELECT seq FROM outbox WHERE sent_at IS NULL;

DROP TRIGGER outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox_pending
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

DROP INDEX outbox_unsent;
ALTER TABLE outbox DROP COLUMN sent_at;

-- Rows are appended in time order, so a block-range index answers retention
-- and `republish --since` at a fraction of a b-tree's cost per insert.
DROP INDEX outbox_recorded;
CREATE INDEX outbox_recorded ON outbox USING brin (recorded_at);
