-- Canonical case schema, version 1 (DESIGN section 3).
-- All timestamps are TIMESTAMPTZ in UTC; windows are half-open [start, end).
-- `load_id` on every data table names the `loads` row the record came from (provenance and --replace).

CREATE TABLE IF NOT EXISTS requests (
    request_id          VARCHAR,
    ts                  TIMESTAMPTZ,
    endpoint            VARCHAR,
    model_name          VARCHAR,
    model_version       VARCHAR,
    pipeline_version    VARCHAR,
    client_version      VARCHAR,
    host                VARCHAR,
    latency_ms          DOUBLE,
    status              VARCHAR,
    http_status         INTEGER,
    error_type          VARCHAR,
    in_flight           INTEGER,
    cache_hit           BOOLEAN,
    cache_model_version VARCHAR,
    prediction          VARCHAR,
    score               DOUBLE,
    input_tokens        INTEGER,
    output_tokens       INTEGER,
    ttft_ms             DOUBLE,
    load_id             INTEGER
    -- feature columns are appended by the loaders (DOUBLE or VARCHAR), see `features`
);

CREATE TABLE IF NOT EXISTS labels (
    request_id VARCHAR,
    label      VARCHAR,
    labeled_at TIMESTAMPTZ,
    load_id    INTEGER
);

CREATE TABLE IF NOT EXISTS reference (
    label      VARCHAR,
    prediction VARCHAR,
    score      DOUBLE,
    load_id    INTEGER
    -- the same feature columns as `requests`, appended by the loaders
);

CREATE TABLE IF NOT EXISTS features (
    name     VARCHAR PRIMARY KEY,
    kind     VARCHAR NOT NULL CHECK (kind IN ('numeric', 'categorical')),
    position INTEGER,
    unit     VARCHAR
);

CREATE TABLE IF NOT EXISTS metrics (
    ts      TIMESTAMPTZ,
    host    VARCHAR,
    name    VARCHAR,
    value   DOUBLE,
    labels  JSON,
    load_id INTEGER
);

CREATE TABLE IF NOT EXISTS events (
    ts       TIMESTAMPTZ,
    kind     VARCHAR,
    artifact VARCHAR,
    version  VARCHAR,
    host     VARCHAR,
    detail   JSON,
    load_id  INTEGER
);

CREATE TABLE IF NOT EXISTS lineage (
    release          VARCHAR,
    model_version    VARCHAR,
    pipeline_version VARCHAR,
    client_version   VARCHAR,
    created_at       TIMESTAMPTZ,
    load_id          INTEGER
);

CREATE TABLE IF NOT EXISTS loads (
    load_id       INTEGER PRIMARY KEY,
    path          VARCHAR NOT NULL,
    sha256        VARCHAR NOT NULL,
    table_name    VARCHAR NOT NULL,
    format        VARCHAR NOT NULL,
    rows_read     BIGINT NOT NULL,
    rows_loaded   BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    loaded_at     TIMESTAMPTZ NOT NULL,
    replaced      BOOLEAN NOT NULL DEFAULT false,
    note          VARCHAR,
    CHECK (rows_read = rows_loaded + rows_rejected)
);

CREATE TABLE IF NOT EXISTS rejects (
    load_id     INTEGER,
    file        VARCHAR,
    row_number  BIGINT,
    column_name VARCHAR,
    reason      VARCHAR,
    raw         VARCHAR
);
