-- Supervision service schema: projections of the agreements, orders and
-- issues events it monitors, the reminders and notices it generates, credit
-- records and detected findings. Regions are integers so a bureau's subtree
-- is a range.

-- Projection of agreements.org.registered / updated (highest revision).
CREATE TABLE orgs (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL,
    name        text NOT NULL,
    region      integer NOT NULL,
    active      boolean NOT NULL,
    revision    bigint NOT NULL
);
CREATE INDEX orgs_region ON orgs (kind, region);

-- Projection of agreements.period.opened.
CREATE TABLE periods (
    id              uuid PRIMARY KEY,
    project_code    text NOT NULL,
    number          integer NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL
);

-- Projection of agreements.agreed_volume.set: the latest revision of each
-- hospital × period × product group, one row per product.
CREATE TABLE agreed_lines (
    period          uuid NOT NULL,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    product_group   text NOT NULL,
    national_code   text NOT NULL,
    quantity        bigint NOT NULL,
    amount_fen      bigint NOT NULL,
    revision        integer NOT NULL,
    PRIMARY KEY (period, hospital, product_group, national_code)
);
CREATE INDEX agreed_lines_hospital ON agreed_lines (hospital, period);

-- Projection of agreements.flag.raised (reported-not-used, used-not-reported).
CREATE TABLE flags (
    event_id        uuid PRIMARY KEY,
    period          uuid NOT NULL,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    kind            text NOT NULL,
    detail          text NOT NULL,
    raised_at       timestamptz NOT NULL
);
CREATE INDEX flags_hospital ON flags (hospital, raised_at);

-- Projection of orders.order.placed / responded and orders.shipment.dispatched.
CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    period          uuid NOT NULL,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    distributor     uuid NOT NULL,
    codes           text[] NOT NULL,
    quantity        bigint NOT NULL,
    placed_at       timestamptz NOT NULL,
    placed_event    uuid NOT NULL,
    response        text,
    responded_at    timestamptz,
    response_event  uuid,
    response_reason text,
    shipped_at      timestamptz,
    shipped_event   uuid
);
CREATE INDEX orders_distributor ON orders (distributor, placed_at);
CREATE INDEX orders_hospital ON orders (hospital, period);

-- Projection of orders.receipt.accepted, one row per accepted line.
CREATE TABLE accepted_lines (
    acceptance      uuid NOT NULL,
    line_no         integer NOT NULL,
    event_id        uuid NOT NULL,
    period          uuid NOT NULL,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    distributor     uuid NOT NULL,
    national_code   text NOT NULL,
    quantity        bigint NOT NULL,
    amount_fen      bigint NOT NULL,
    accepted_at     timestamptz NOT NULL,
    payment_due_at  timestamptz,
    PRIMARY KEY (acceptance, line_no)
);
CREATE INDEX accepted_lines_hospital ON accepted_lines (hospital, period, national_code);

-- Projection of orders.settlement.paid.
CREATE TABLE settlements (
    id              uuid PRIMARY KEY,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    acceptance      uuid,
    amount_fen      bigint NOT NULL,
    due_at          timestamptz NOT NULL,
    paid_at         timestamptz NOT NULL,
    on_time         boolean NOT NULL
);
CREATE INDEX settlements_hospital ON settlements (hospital, due_at);

-- Projection of orders.offline_purchase.declared.
CREATE TABLE offline_purchases (
    event_id        uuid PRIMARY KEY,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    month           date NOT NULL,
    amount_fen      bigint NOT NULL
);
CREATE INDEX offline_purchases_hospital ON offline_purchases (hospital, month);

-- Monthly reminders and quarterly notices; one per hospital, reason and term.
CREATE TABLE work_items (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    reason          text NOT NULL,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    term            text NOT NULL,
    measured_bp     bigint,
    threshold_bp    bigint,
    detail          text NOT NULL,
    generated_at    timestamptz NOT NULL,
    UNIQUE (kind, reason, hospital, term)
);
CREATE INDEX work_items_region ON work_items (hospital_region);

-- Violations detected from delivery data; one per kind, distributor,
-- hospital, period and product.
CREATE TABLE findings (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    enterprise      uuid NOT NULL,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    period          uuid NOT NULL,
    national_code   text NOT NULL DEFAULT '',
    quantity        bigint NOT NULL,
    detail          text NOT NULL,
    source_events   uuid[] NOT NULL,
    occurred_at     timestamptz NOT NULL,
    detected_at     timestamptz NOT NULL,
    issue           uuid,
    issue_error     text,
    credit_record   uuid,
    UNIQUE (kind, enterprise, hospital, period, national_code)
);
CREATE INDEX findings_region ON findings (hospital_region);

CREATE TABLE credit_records (
    id              uuid PRIMARY KEY,
    enterprise      uuid NOT NULL,
    kind            text NOT NULL,
    origin          text NOT NULL,
    state           text NOT NULL CHECK (state IN ('open', 'rectified', 'closed')),
    region          integer NOT NULL,
    description     text NOT NULL,
    level           integer NOT NULL,
    rectify_due_at  timestamptz,
    source_events   uuid[] NOT NULL,
    finding         uuid,
    filed_at        timestamptz NOT NULL,
    resolved_at     timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX credit_records_region ON credit_records (region);
CREATE INDEX credit_records_enterprise ON credit_records (enterprise);
-- A repeated-issue signal files one record per enterprise and type.
CREATE TABLE credit_signals (
    signal          text PRIMARY KEY,
    record          uuid NOT NULL REFERENCES credit_records (id)
);

-- Every change of a credit record: who, when, what. Never updated.
CREATE TABLE credit_history (
    seq         bigserial PRIMARY KEY,
    record      uuid NOT NULL REFERENCES credit_records (id),
    action      text NOT NULL,
    actor       text NOT NULL,
    detail      text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX credit_history_record ON credit_history (record, seq);
