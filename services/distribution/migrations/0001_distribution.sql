-- Distribution service schema: projections of the agreements service's
-- directory, periods and supply lists; authorisations, relations (with an
-- append-only log), change requests, remote-area marks and listing states.
-- Region codes are integers (210902) so a jurisdiction's subtree is a range.

-- Projection of agreements.org.registered / org.updated (highest revision wins).
CREATE TABLE orgs (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    name            text NOT NULL,
    region          integer NOT NULL,
    is_manufacturer boolean NOT NULL DEFAULT false,
    is_distributor  boolean NOT NULL DEFAULT false,
    active          boolean NOT NULL DEFAULT true,
    revision        bigint NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- Projection of agreements.period.opened (and the bounds carried by
-- supply_list.published).
CREATE TABLE periods (
    id              uuid PRIMARY KEY,
    project         uuid NOT NULL,
    project_code    text NOT NULL,
    number          integer NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    -- the listing-rule timers were armed for this period
    listing_armed   boolean NOT NULL DEFAULT false,
    CHECK (starts_at < ends_at)
);

-- Projection of agreements.supply_list.published: the list in force.
CREATE TABLE supply_lists (
    period          uuid PRIMARY KEY REFERENCES periods (id),
    revision        integer NOT NULL,
    published_at    timestamptz NOT NULL
);

CREATE TABLE supply_items (
    period          uuid NOT NULL REFERENCES periods (id),
    national_code   text NOT NULL,
    manufacturer    uuid NOT NULL,
    generic_name    text NOT NULL,
    spec_model      text NOT NULL,
    PRIMARY KEY (period, national_code)
);
CREATE INDEX supply_items_manufacturer ON supply_items (manufacturer);

CREATE TABLE authorisations (
    id              uuid PRIMARY KEY,
    period          uuid NOT NULL REFERENCES periods (id),
    manufacturer    uuid NOT NULL,
    distributor     uuid NOT NULL,
    products        text[] NOT NULL,
    areas           integer[] NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'confirmed', 'refused', 'revoked')),
    reason          text,
    granted_by      text NOT NULL,
    granted_at      timestamptz NOT NULL,
    decided_at      timestamptz,
    revoked_at      timestamptz
);
CREATE INDEX authorisations_distributor ON authorisations (distributor, state);
CREATE INDEX authorisations_manufacturer ON authorisations (manufacturer, state);

-- One row per (hospital, product, distributor) selection. A change never
-- rewrites a row into another distributor: it ends the old row at the
-- change date and adds a new one, so every past date keeps its answer.
CREATE TABLE relations (
    id              uuid PRIMARY KEY,
    period          uuid NOT NULL REFERENCES periods (id),
    hospital        uuid NOT NULL,
    hospital_region integer NOT NULL,
    national_code   text NOT NULL,
    manufacturer    uuid NOT NULL,
    distributor     uuid NOT NULL,
    authorisation   uuid REFERENCES authorisations (id),
    state           text NOT NULL CHECK (state IN ('pending', 'active', 'refused', 'ended', 'cancelled')),
    selected_at     timestamptz NOT NULL,
    decided_at      timestamptz,
    reason          text,
    remote_area     boolean NOT NULL DEFAULT false,
    valid_from      timestamptz,
    valid_to        timestamptz,
    replaces        uuid REFERENCES relations (id),
    replaced_by     uuid REFERENCES relations (id),
    -- an empty interval (valid_to = valid_from) is a relation that never delivered
    CHECK (valid_to IS NULL OR valid_from <= valid_to)
);
CREATE UNIQUE INDEX relations_one_open ON relations (period, hospital, national_code, distributor)
    WHERE state IN ('pending', 'active');
CREATE INDEX relations_hospital ON relations (hospital, national_code);
CREATE INDEX relations_distributor ON relations (distributor, state);
CREATE INDEX relations_region ON relations (hospital_region);

-- Append-only audit of every relation transition.
CREATE TABLE relation_log (
    seq             bigserial PRIMARY KEY,
    relation        uuid NOT NULL REFERENCES relations (id),
    state           text NOT NULL,
    actor           text NOT NULL,
    reason          text,
    at              timestamptz NOT NULL
);

CREATE TABLE changes (
    id               uuid PRIMARY KEY,
    period           uuid NOT NULL REFERENCES periods (id),
    hospital         uuid NOT NULL,
    hospital_region  integer NOT NULL,
    national_code    text NOT NULL,
    manufacturer     uuid NOT NULL,
    from_distributor uuid NOT NULL,
    to_distributor   uuid NOT NULL,
    old_relation     uuid NOT NULL REFERENCES relations (id),
    new_relation     uuid REFERENCES relations (id),
    effective_from   timestamptz NOT NULL,
    reason           text NOT NULL,
    requested_by     uuid NOT NULL,
    requested_kind   text NOT NULL,
    requested_at     timestamptz NOT NULL,
    approver_region  integer NOT NULL,
    state            text NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    decided_by       uuid,
    decision_reason  text,
    decided_at       timestamptz
);
CREATE UNIQUE INDEX changes_one_pending ON changes (old_relation) WHERE state = 'pending';
CREATE INDEX changes_pair ON changes (period, hospital, national_code);
CREATE INDEX changes_approver ON changes (approver_region, state);

-- Counties a bureau marks remote (current mark) and every mark ever made.
CREATE TABLE remote_areas (
    region          integer PRIMARY KEY,
    remote          boolean NOT NULL,
    note            text,
    marked_by       uuid NOT NULL,
    marked_at       timestamptz NOT NULL
);

CREATE TABLE remote_area_log (
    seq             bigserial PRIMARY KEY,
    region          integer NOT NULL,
    remote          boolean NOT NULL,
    note            text,
    marked_by       uuid NOT NULL,
    marked_at       timestamptz NOT NULL
);

-- Listing rule (Jiangxi style): supply-list products without an active relation.
CREATE TABLE listings (
    period          uuid NOT NULL REFERENCES periods (id),
    national_code   text NOT NULL,
    manufacturer    uuid NOT NULL,
    state           text NOT NULL CHECK (state IN ('at_risk', 'suspended', 'cleared')),
    since           timestamptz NOT NULL,
    suspend_at      timestamptz NOT NULL,
    flagged_at      timestamptz NOT NULL,
    suspended_at    timestamptz,
    cleared_at      timestamptz,
    PRIMARY KEY (period, national_code)
);

CREATE TABLE demo_marks (
    name            text PRIMARY KEY,
    loaded_at       timestamptz NOT NULL
);

-- Upper end of a region code's subtree (210900 → 210999, 210000 → 219999).
CREATE FUNCTION region_hi(r integer) RETURNS integer
    LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN r = 0 THEN 999999 WHEN r % 10000 = 0 THEN r + 9999
              WHEN r % 100 = 0 THEN r + 99 ELSE r END $$;
