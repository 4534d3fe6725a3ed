-- A distributor's list to invoice (待开票) reads the acceptances without an
-- invoice, newest first; they are few beside the whole book, which would
-- otherwise be scanned on every look.
CREATE INDEX acceptances_to_invoice ON acceptances (accepted_at, id) WHERE invoice IS NULL;
