-- Orders service schema: projections of the agreements service (directory,
-- periods, supply lists with winning prices) and of the distribution service
-- (relations over time); orders, shipments, acceptances, invoices,
-- settlements, declared offline purchases and integrator ingest outcomes.
-- Money is bigint fen; region codes are integers so a subtree is a range.

CREATE TABLE orgs (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL,
    name        text NOT NULL,
    region      integer NOT NULL,
    acts_for    uuid[] NOT NULL DEFAULT '{}',
    active      boolean NOT NULL DEFAULT true,
    revision    bigint NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE periods (
    id          uuid PRIMARY KEY,
    number      integer NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    CHECK (starts_at < ends_at)
);

CREATE TABLE supply_lists (
    period      uuid PRIMARY KEY REFERENCES periods (id),
    revision    integer NOT NULL,
    published_at timestamptz NOT NULL
);

CREATE TABLE supply_items (
    period              uuid NOT NULL REFERENCES periods (id),
    national_code       text NOT NULL,
    manufacturer        uuid NOT NULL,
    winning_price_fen   bigint NOT NULL,
    PRIMARY KEY (period, national_code)
);

-- Projection of distribution.relation.activated / ended: [valid_from, valid_to).
CREATE TABLE relations (
    id              uuid PRIMARY KEY,
    period          uuid NOT NULL,
    hospital        uuid NOT NULL,
    national_code   text NOT NULL,
    distributor     uuid NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz
);
CREATE INDEX relations_lookup ON relations (hospital, national_code, distributor);

CREATE TABLE orders (
    id                  uuid PRIMARY KEY,
    period              uuid NOT NULL,
    hospital            uuid NOT NULL,
    hospital_region     integer NOT NULL,
    distributor         uuid NOT NULL,
    source              text NOT NULL,
    integrator          uuid,
    external_id         text,
    state               text NOT NULL,
    response_reason     text,
    total_amount_fen    bigint NOT NULL,
    placed_at           timestamptz NOT NULL,
    responded_at        timestamptz,
    recorded_at         timestamptz NOT NULL,
    UNIQUE (integrator, external_id)
);
CREATE INDEX orders_hospital ON orders (hospital);
CREATE INDEX orders_distributor ON orders (distributor);

CREATE TABLE order_lines (
    order_id            uuid NOT NULL REFERENCES orders (id),
    line_no             integer NOT NULL,
    national_code       text NOT NULL,
    manufacturer        uuid NOT NULL,
    quantity            bigint NOT NULL CHECK (quantity > 0),
    confirmed_quantity  bigint,
    response_reason     text,
    shipped_quantity    bigint NOT NULL DEFAULT 0,
    received_quantity   bigint NOT NULL DEFAULT 0,
    accepted_quantity   bigint NOT NULL DEFAULT 0,
    rejected_quantity   bigint NOT NULL DEFAULT 0,
    unit_price_fen      bigint NOT NULL,
    amount_fen          bigint NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE shipments (
    id              uuid PRIMARY KEY,
    order_id        uuid NOT NULL REFERENCES orders (id),
    shipment_no     text NOT NULL,
    shipped_at      timestamptz NOT NULL,
    received_at     timestamptz,
    UNIQUE (order_id, shipment_no)
);

CREATE TABLE shipment_lines (
    shipment        uuid NOT NULL REFERENCES shipments (id),
    line_no         integer NOT NULL,
    national_code   text NOT NULL,
    batch_no        text NOT NULL,
    expiry_date     date NOT NULL,
    quantity        bigint NOT NULL CHECK (quantity > 0)
);

CREATE TABLE acceptances (
    id                  uuid PRIMARY KEY,
    order_id            uuid NOT NULL REFERENCES orders (id),
    shipment            uuid,
    period              uuid NOT NULL,
    hospital            uuid NOT NULL,
    hospital_region     integer NOT NULL,
    distributor         uuid NOT NULL,
    source              text NOT NULL,
    amount_fen          bigint NOT NULL,
    accepted_at         timestamptz NOT NULL,
    due_at              timestamptz NOT NULL,
    invoice             uuid,
    paid_fen            bigint NOT NULL DEFAULT 0,
    paid_on_time_fen    bigint NOT NULL DEFAULT 0,
    paid_at             timestamptz,
    overdue             boolean NOT NULL DEFAULT false,
    lines               jsonb NOT NULL
);
CREATE INDEX acceptances_due ON acceptances (due_at);
CREATE INDEX acceptances_hospital ON acceptances (hospital, accepted_at);

CREATE TABLE invoices (
    id              uuid PRIMARY KEY,
    acceptance      uuid NOT NULL UNIQUE REFERENCES acceptances (id),
    invoice_code    text NOT NULL,
    invoice_number  text NOT NULL,
    amount_fen      bigint NOT NULL,
    tax_fen         bigint NOT NULL,
    issued_on       date NOT NULL,
    recorded_at     timestamptz NOT NULL,
    UNIQUE (invoice_code, invoice_number)
);

CREATE TABLE settlements (
    id              uuid PRIMARY KEY,
    acceptance      uuid NOT NULL REFERENCES acceptances (id),
    amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
    channel         text NOT NULL,
    reason          text,
    actor           text NOT NULL,
    paid_at         timestamptz NOT NULL,
    on_time         boolean NOT NULL
);

CREATE TABLE offline_purchases (
    id              bigserial PRIMARY KEY,
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    month           date NOT NULL,
    national_code   text,
    amount_fen      bigint NOT NULL CHECK (amount_fen >= 0),
    declared_at     timestamptz NOT NULL
);

-- One row per integrator message (integrator, external id): applied or
-- rejected with its reason. A repeat finds its row and changes nothing.
CREATE TABLE ingest_messages (
    integrator      text NOT NULL,
    external_id     text NOT NULL,
    event           text NOT NULL,
    outcome         text NOT NULL,
    field           text,
    reason          text,
    at              timestamptz NOT NULL,
    PRIMARY KEY (integrator, external_id)
);
