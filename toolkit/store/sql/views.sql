-- Views and table macros for ad-hoc SQL. They are stored in the case database, so the plain
-- `duckdb` CLI can use them without the toolkit. Recreated on every writable connect.

-- Requests joined with their ground truth (the latest label per request).
CREATE OR REPLACE VIEW labelled_predictions AS
SELECT r.*, l.label, l.labeled_at, (r.prediction = l.label) AS correct
FROM requests AS r
JOIN (
    SELECT * FROM labels
    QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY labeled_at DESC NULLS LAST) = 1
) AS l USING (request_id);

-- Which artifact versions served traffic together, and when.
CREATE OR REPLACE VIEW version_mix AS
SELECT model_version, pipeline_version, client_version,
       min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS requests
FROM requests
GROUP BY ALL
ORDER BY first_seen;

-- Requests in a half-open window: SELECT * FROM window_requests('2026-03-02', '2026-03-03').
CREATE OR REPLACE MACRO window_requests(start_ts, end_ts) AS TABLE
SELECT * FROM requests
WHERE ts >= CAST(start_ts AS TIMESTAMPTZ) AND ts < CAST(end_ts AS TIMESTAMPTZ);

-- Latency percentiles and failure rates per time bucket:
-- SELECT * FROM latency_timeline(INTERVAL 5 MINUTE).
CREATE OR REPLACE MACRO latency_timeline(bucket) AS TABLE
SELECT time_bucket(bucket, ts) AS bucket_start,
       count(*) AS requests,
       quantile_cont(latency_ms, 0.50) AS p50_ms,
       quantile_cont(latency_ms, 0.95) AS p95_ms,
       quantile_cont(latency_ms, 0.99) AS p99_ms,
       max(latency_ms) AS max_ms,
       avg(CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate,
       avg(CASE WHEN status = 'timeout' THEN 1.0 ELSE 0.0 END) AS timeout_rate
FROM requests
GROUP BY ALL
ORDER BY bucket_start;

-- Accuracy of labelled requests per time bucket: SELECT * FROM accuracy_timeline(INTERVAL 1 HOUR).
CREATE OR REPLACE MACRO accuracy_timeline(bucket) AS TABLE
SELECT time_bucket(bucket, ts) AS bucket_start,
       count(*) AS labelled,
       avg(CASE WHEN correct THEN 1.0 ELSE 0.0 END) AS accuracy,
       avg(score) AS mean_score
FROM labelled_predictions
GROUP BY ALL
ORDER BY bucket_start;

-- One metric per host per time bucket:
-- SELECT * FROM metric_timeline('memory_used_bytes', INTERVAL 1 MINUTE).
CREATE OR REPLACE MACRO metric_timeline(metric_name, bucket) AS TABLE
SELECT time_bucket(bucket, ts) AS bucket_start, host,
       avg(value) AS mean_value, max(value) AS max_value, count(*) AS samples
FROM metrics
WHERE name = metric_name
GROUP BY ALL
ORDER BY bucket_start, host;
