-- Prepayment service schema: projections of the agreements service's
-- periods and effective agreement versions; one ledger per hospital ×
-- project × period with its immutable calculations and entries.
-- Money is bigint fen; ratios are basis points; regions are integers so a
-- bureau's subtree is a range.

-- Projection of agreements.period.opened / supply_list.published.
CREATE TABLE periods (
    id              uuid PRIMARY KEY,
    project         uuid NOT NULL,
    project_code    text NOT NULL,
    number          integer NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    CHECK (starts_at < ends_at)
);

-- Projection of agreements.agreement.state_changed: the newest version of
-- each agreement seen as effective or superseded (older versions ignored).
CREATE TABLE agreements (
    id              uuid PRIMARY KEY,
    version         integer NOT NULL,
    state           text NOT NULL CHECK (state IN ('effective', 'superseded')),
    period          uuid NOT NULL,
    project         uuid NOT NULL,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    amount_fen      bigint NOT NULL CHECK (amount_fen >= 0),
    changed_at      timestamptz NOT NULL
);
CREATE INDEX agreements_key ON agreements (hospital, project, period);

CREATE TABLE ledgers (
    id                uuid PRIMARY KEY,
    hospital          uuid NOT NULL,
    hospital_region   integer NOT NULL,
    project           uuid NOT NULL,
    period            uuid NOT NULL,
    state             text NOT NULL
        CHECK (state IN ('calculated', 'approved', 'disbursed', 'closed', 'blocked')),
    agreed_amount_fen bigint NOT NULL,
    ratio_bp          integer NOT NULL,
    amount_fen        bigint NOT NULL,
    rule              text NOT NULL,
    approved_by       uuid,
    approved_at       timestamptz,
    disburse_by       timestamptz,
    payment_reference text,
    disbursed_on      date,
    late              boolean NOT NULL DEFAULT false,
    blocked_reason    text,
    deducted_fen      bigint NOT NULL DEFAULT 0,
    -- always Σ entries.amount_fen (kept with each entry, checked by tests)
    balance_fen       bigint NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (hospital, project, period)
);
CREATE INDEX ledgers_region ON ledgers (hospital_region);

-- Every (re)calculation, never updated.
CREATE TABLE calculations (
    ledger            uuid NOT NULL REFERENCES ledgers (id),
    seq               integer NOT NULL,
    agreed_amount_fen bigint NOT NULL,
    ratio_bp          integer NOT NULL,
    amount_fen        bigint NOT NULL,
    adjustment_fen    bigint NOT NULL,
    inputs            jsonb NOT NULL,
    rule              text NOT NULL,
    cause             text NOT NULL,
    calculated_at     timestamptz NOT NULL,
    PRIMARY KEY (ledger, seq)
);

-- Immutable ledger entries; amount_fen is the signed effect on the balance.
CREATE TABLE entries (
    id              uuid PRIMARY KEY,
    ledger          uuid NOT NULL REFERENCES ledgers (id),
    seq             integer NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('disbursed', 'offset', 'deduction', 'adjustment')),
    amount_fen      bigint NOT NULL,
    balance_fen     bigint NOT NULL,
    -- the settlement an offset recovers from (one offset per settlement)
    settlement      uuid,
    cause           text NOT NULL,
    recorded_at     timestamptz NOT NULL,
    UNIQUE (ledger, seq)
);
CREATE UNIQUE INDEX entries_one_offset_per_settlement ON entries (ledger, settlement)
    WHERE kind = 'offset';

-- Entries and calculations are immutable: corrections are new rows.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable; record a new entry instead', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER entries_immutable BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER calculations_immutable BEFORE UPDATE OR DELETE ON calculations
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
