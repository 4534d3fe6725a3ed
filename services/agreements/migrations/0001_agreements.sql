-- Agreements service schema: directory, projects, periods, supply lists,
-- volume reports, agreed volumes, tripartite agreements, progress.
-- Region codes are stored as integers (210902) so a jurisdiction's subtree
-- is a range (city 210900 → 210900..210999).

CREATE TABLE orgs (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    name            text NOT NULL,
    region          integer NOT NULL,
    nhsa_code       text UNIQUE,
    level           text,
    uscc            text UNIQUE,
    is_manufacturer boolean NOT NULL DEFAULT false,
    is_distributor  boolean NOT NULL DEFAULT false,
    acts_for        uuid[] NOT NULL DEFAULT '{}',
    active          boolean NOT NULL DEFAULT true,
    revision        bigint NOT NULL,
    registered_at   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX orgs_region ON orgs (region);
CREATE INDEX orgs_kind ON orgs (kind);

CREATE TABLE projects (
    id              uuid PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name            text NOT NULL,
    organiser       text NOT NULL,
    category        text NOT NULL,
    provinces       integer[] NOT NULL,
    product_groups  jsonb NOT NULL,
    registered_at   timestamptz NOT NULL
);

CREATE TABLE periods (
    id                  uuid PRIMARY KEY,
    project             uuid NOT NULL REFERENCES projects (id),
    number              integer NOT NULL,
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    first_day           date NOT NULL,
    last_day            date NOT NULL,
    paper_deadline      timestamptz,
    carried_over_from   uuid REFERENCES periods (id),
    supply_revision     integer NOT NULL DEFAULT 0,
    supply_published_at timestamptz,
    window_opened_at    timestamptz,
    window_closes_at    timestamptz,
    opened_at           timestamptz NOT NULL,
    UNIQUE (project, number),
    CHECK (starts_at < ends_at)
);

-- Supply list items; `published` is the list in force, `draft` the next one.
CREATE TABLE supply_items (
    period            uuid NOT NULL REFERENCES periods (id),
    status            text NOT NULL CHECK (status IN ('draft', 'published')),
    national_code     text NOT NULL,
    generic_name      text NOT NULL,
    spec_model        text NOT NULL,
    unit              text NOT NULL,
    manufacturer      uuid NOT NULL REFERENCES orgs (id),
    winning_price_fen bigint NOT NULL CHECK (winning_price_fen > 0),
    product_group     text NOT NULL,
    position          integer NOT NULL,
    PRIMARY KEY (period, status, national_code)
);

CREATE TABLE volume_reports (
    period        uuid NOT NULL REFERENCES periods (id),
    hospital      uuid NOT NULL REFERENCES orgs (id),
    product_group text NOT NULL,
    lines         jsonb NOT NULL,
    quantity      bigint NOT NULL,
    reported_at   timestamptz NOT NULL,
    PRIMARY KEY (period, hospital, product_group)
);

CREATE TABLE agreed_volumes (
    period        uuid NOT NULL REFERENCES periods (id),
    hospital      uuid NOT NULL REFERENCES orgs (id),
    product_group text NOT NULL,
    quantity      bigint NOT NULL,
    amount_fen    bigint NOT NULL,
    revision      integer NOT NULL,
    reason        text,
    set_at        timestamptz NOT NULL,
    PRIMARY KEY (period, hospital, product_group)
);

CREATE TABLE agreed_volume_lines (
    period          uuid NOT NULL,
    hospital        uuid NOT NULL,
    product_group   text NOT NULL,
    national_code   text NOT NULL,
    manufacturer    uuid NOT NULL,
    quantity        bigint NOT NULL CHECK (quantity >= 0),
    unit_price_fen  bigint NOT NULL,
    amount_fen      bigint NOT NULL,
    PRIMARY KEY (period, hospital, national_code),
    FOREIGN KEY (period, hospital, product_group)
        REFERENCES agreed_volumes (period, hospital, product_group) ON DELETE CASCADE
);

-- Every version of every tripartite agreement; no version is overwritten
-- except its own state fields.
CREATE TABLE agreements (
    id                        uuid NOT NULL,
    version                   integer NOT NULL,
    period                    uuid NOT NULL REFERENCES periods (id),
    hospital                  uuid NOT NULL REFERENCES orgs (id),
    manufacturer              uuid NOT NULL REFERENCES orgs (id),
    state                     text NOT NULL,
    lines                     jsonb NOT NULL,
    amount_fen                bigint NOT NULL,
    amends_version            integer,
    amendment_reason          text,
    hospital_confirmed_at     timestamptz,
    manufacturer_confirmed_at timestamptz,
    effective_at              timestamptz,
    rejected_reason           text,
    rejected_by               uuid,
    paper_signed_at           timestamptz,
    paper_sha256              text,
    paper_late                boolean,
    paper_recorded_at         timestamptz,
    created_at                timestamptz NOT NULL,
    updated_at                timestamptz NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE INDEX agreements_period_hospital ON agreements (period, hospital);
-- At most one live (not rejected, not superseded) agreement per hospital ×
-- manufacturer × period besides pending amendments of it.
CREATE INDEX agreements_manufacturer ON agreements (manufacturer);

CREATE TABLE agreement_distributors (
    agreement    uuid NOT NULL,
    version      integer NOT NULL,
    distributor  uuid NOT NULL REFERENCES orgs (id),
    confirmed_at timestamptz,
    PRIMARY KEY (agreement, version, distributor),
    FOREIGN KEY (agreement, version) REFERENCES agreements (id, version)
);
CREATE INDEX agreement_distributors_distributor ON agreement_distributors (distributor);

-- Projection of the distribution service's relations.
CREATE TABLE relations (
    id            uuid PRIMARY KEY,
    period        uuid NOT NULL,
    hospital      uuid NOT NULL,
    national_code text NOT NULL,
    manufacturer  uuid NOT NULL,
    distributor   uuid NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz
);
CREATE INDEX relations_hospital ON relations (hospital, distributor);

-- Accepted order lines already counted (business-key idempotency on top of
-- the inbox's event-id idempotency).
CREATE TABLE accepted_lines (
    acceptance    uuid NOT NULL,
    line_no       integer NOT NULL,
    period        uuid NOT NULL,
    hospital      uuid NOT NULL,
    national_code text NOT NULL,
    quantity      bigint NOT NULL,
    amount_fen    bigint NOT NULL,
    accepted_at   timestamptz NOT NULL,
    PRIMARY KEY (acceptance, line_no)
);

CREATE TABLE progress (
    period              uuid NOT NULL,
    hospital            uuid NOT NULL,
    national_code       text NOT NULL,
    hospital_region     integer NOT NULL,
    accepted_quantity   bigint NOT NULL DEFAULT 0,
    rejected_quantity   bigint NOT NULL DEFAULT 0,
    accepted_amount_fen bigint NOT NULL DEFAULT 0,
    first_accepted_at   timestamptz,
    last_accepted_at    timestamptz,
    PRIMARY KEY (period, hospital, national_code)
);

CREATE TABLE progress_monthly (
    period              uuid NOT NULL,
    hospital            uuid NOT NULL,
    national_code       text NOT NULL,
    month               date NOT NULL,
    accepted_quantity   bigint NOT NULL DEFAULT 0,
    accepted_amount_fen bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (period, hospital, national_code, month)
);

CREATE TABLE progress_snapshots (
    period     uuid NOT NULL,
    hospital   uuid NOT NULL,
    week_start date NOT NULL,
    taken_at   timestamptz NOT NULL,
    PRIMARY KEY (period, hospital, week_start)
);

CREATE TABLE demo_loads (
    name      text PRIMARY KEY,
    loaded_at timestamptz NOT NULL
);
