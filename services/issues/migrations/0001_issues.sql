-- Issues service schema: projections (supply lists, distribution relations,
-- org directory) and the direct reports with their audit trail.
-- Regions are integers so a bureau's subtree is a range.

-- Projection of agreements.supply_list.published (latest revision per period).
CREATE TABLE supply_items (
    period          uuid NOT NULL,
    national_code   text NOT NULL,
    generic_name    text NOT NULL,
    spec_model      text NOT NULL,
    manufacturer    uuid NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    revision        integer NOT NULL,
    published_at    timestamptz NOT NULL,
    PRIMARY KEY (period, national_code)
);
CREATE INDEX supply_items_code ON supply_items (national_code);

-- Projection of distribution.relation.activated / ended.
CREATE TABLE relations (
    id              uuid PRIMARY KEY,
    hospital        uuid NOT NULL,
    national_code   text NOT NULL,
    manufacturer    uuid NOT NULL,
    distributor     uuid NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz
);
CREATE INDEX relations_key ON relations (hospital, national_code);

-- Projection of agreements.org.registered / updated (highest revision).
CREATE TABLE orgs (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    name            text NOT NULL,
    region          integer NOT NULL,
    active          boolean NOT NULL,
    revision        bigint NOT NULL
);
CREATE INDEX orgs_region ON orgs (kind, region);

CREATE TABLE issues (
    id                  uuid PRIMARY KEY,
    state               text NOT NULL
        CHECK (state IN ('dispatched', 'responded', 'escalated', 'feedback_given', 'resolved')),
    hospital            uuid NOT NULL,
    hospital_region     integer NOT NULL,
    national_code       text NOT NULL,
    product_name        text NOT NULL,
    spec                text NOT NULL,
    quantity            bigint NOT NULL CHECK (quantity > 0),
    issue_type          text NOT NULL,
    occurred_at         timestamptz NOT NULL,
    impact_scope        text NOT NULL,
    statement           text NOT NULL,
    manufacturer        uuid NOT NULL,
    distributors        uuid[] NOT NULL,
    bureau              uuid NOT NULL,
    bureau_region       integer NOT NULL,
    filed_at            timestamptz NOT NULL,
    enterprise_due_at   timestamptz NOT NULL,
    responded_at        timestamptz,
    response_on_time    boolean,
    handling_due_at     timestamptz,
    province            uuid,
    province_region     integer,
    feedback_at         timestamptz,
    auto_resolve_at     timestamptz,
    resolved_at         timestamptz,
    overdue_enterprise  boolean NOT NULL DEFAULT false,
    overdue_bureau      boolean NOT NULL DEFAULT false,
    overdue_province    boolean NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX issues_region ON issues (hospital_region);
CREATE INDEX issues_manufacturer ON issues (manufacturer);

-- Every transition: who, when, what. Never updated.
CREATE TABLE audit (
    seq         bigserial PRIMARY KEY,
    issue       uuid NOT NULL REFERENCES issues (id),
    action      text NOT NULL,
    actor       text NOT NULL,
    org         uuid NOT NULL,
    detail      text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX audit_issue ON audit (issue, seq);
