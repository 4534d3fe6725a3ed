-- Every paid settlement received from orders, whether or not it recovered
-- anything: the basis offsets are computed from, and prepayment's side of the
-- reconciliation report (settled amounts in orders = settlements seen here).
CREATE TABLE settlements (
    settlement      uuid PRIMARY KEY,
    period          uuid NOT NULL,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    amount_fen      bigint NOT NULL,
    paid_at         timestamptz NOT NULL,
    event           uuid NOT NULL
);
CREATE INDEX settlements_region ON settlements (hospital_region, period);

