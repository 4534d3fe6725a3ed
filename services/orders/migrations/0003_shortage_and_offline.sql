-- Shortage mode (Hunan 湘医保函〔2024〕2号): bureaus' shortage flags per
-- region and product, the projection of agreed volumes that decides who is
-- served first, the ledger of non-winning substitutes (excluded from
-- assessment), and what the hospital asked for when a cap reduced a line.

ALTER TABLE order_lines ADD COLUMN requested_quantity bigint;

CREATE TABLE shortages (
    id              uuid PRIMARY KEY,
    region          integer NOT NULL,
    region_lo       integer NOT NULL,
    region_hi       integer NOT NULL,
    national_code   text NOT NULL,
    cap_per_line    bigint NOT NULL CHECK (cap_per_line > 0),
    bureau          uuid NOT NULL,
    reason          text NOT NULL,
    flagged_by      text NOT NULL,
    flagged_at      timestamptz NOT NULL,
    lifted_at       timestamptz,
    lifted_by       text,
    lift_reason     text
);
CREATE INDEX shortages_code ON shortages (national_code, region_lo, region_hi);
-- One open flag per region and product.
CREATE UNIQUE INDEX shortages_open ON shortages (region, national_code) WHERE lifted_at IS NULL;

-- Projection of agreements.agreed_volume.set: the latest revision per
-- (period, hospital, product group) and its lines.
CREATE TABLE agreed_volume_sets (
    period          uuid NOT NULL,
    hospital        uuid NOT NULL,
    product_group   text NOT NULL,
    revision        integer NOT NULL,
    PRIMARY KEY (period, hospital, product_group)
);

CREATE TABLE agreed_volumes (
    period          uuid NOT NULL,
    hospital        uuid NOT NULL,
    product_group   text NOT NULL,
    national_code   text NOT NULL,
    quantity        bigint NOT NULL,
    PRIMARY KEY (period, hospital, product_group, national_code)
);
CREATE INDEX agreed_volumes_code ON agreed_volumes (period, national_code, hospital);

CREATE TABLE substitutes (
    id                  uuid PRIMARY KEY,
    shortage            uuid NOT NULL REFERENCES shortages (id),
    hospital            uuid NOT NULL,
    hospital_region     integer NOT NULL,
    period              uuid NOT NULL,
    short_product       text NOT NULL,
    substitute_name     text NOT NULL,
    substitute_code     text,
    quantity            bigint NOT NULL CHECK (quantity > 0),
    amount_fen          bigint NOT NULL CHECK (amount_fen > 0),
    purchased_on        date NOT NULL,
    recorded_by         text NOT NULL,
    recorded_at         timestamptz NOT NULL
);
CREATE INDEX substitutes_hospital ON substitutes (hospital, purchased_on);

-- The audit of items moved to offline settlement reads settlements with
-- channel 'offline'; it needs the acting organisation too. A payment may be
-- recorded after the day it was made (`paid_at`); `recorded_at` is when.
ALTER TABLE settlements ADD COLUMN actor_org uuid;
ALTER TABLE settlements ADD COLUMN recorded_at timestamptz;
CREATE INDEX settlements_offline ON settlements (paid_at) WHERE channel = 'offline';
