-- Evidence files (content in the JetStream object store, metadata here),
-- the seal on the statement, false reports and repeated-issue detections.

ALTER TABLE issues DROP CONSTRAINT issues_state_check;
ALTER TABLE issues ADD CONSTRAINT issues_state_check
    CHECK (state IN ('dispatched', 'responded', 'escalated', 'feedback_given', 'resolved',
                     'false_report'));
ALTER TABLE issues ADD COLUMN statement_sealed boolean NOT NULL DEFAULT false;
ALTER TABLE issues ADD COLUMN false_report_at timestamptz;
CREATE INDEX issues_hospital ON issues (hospital);
CREATE INDEX issues_repeat ON issues (manufacturer, issue_type, filed_at);

CREATE TABLE evidence (
    id              uuid PRIMARY KEY,
    issue           uuid REFERENCES issues (id),
    object          text NOT NULL UNIQUE,
    file_name       text NOT NULL,
    content_type    text NOT NULL,
    size_bytes      bigint NOT NULL CHECK (size_bytes > 0),
    sha256          text NOT NULL,
    sealed          boolean NOT NULL,
    uploaded_by     uuid NOT NULL,
    uploader        text NOT NULL,
    uploaded_at     timestamptz NOT NULL
);
CREATE INDEX evidence_issue ON evidence (issue);

-- One row per repeated-issue detection, so one run of repeats within the
-- window is reported once.
CREATE TABLE repeats (
    enterprise      uuid NOT NULL,
    issue_type      text NOT NULL,
    detected_at     timestamptz NOT NULL,
    issues          uuid[] NOT NULL,
    PRIMARY KEY (enterprise, issue_type, detected_at)
);
