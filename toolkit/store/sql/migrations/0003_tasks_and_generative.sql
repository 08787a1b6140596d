-- Version 3 (DESIGN section 3a, "schema version 2" of the design): model tasks per endpoint and
-- the request columns of generative (token-streaming) endpoints. Existing cases gain the columns
-- empty (NULL) and an empty `endpoints` catalog; nothing else changes.

-- Generative endpoints: token counts, token-level latency, engine decisions, request settings.
ALTER TABLE requests ADD COLUMN IF NOT EXISTS cached_tokens INTEGER;     -- prompt tokens served from the prefix (KV) cache
ALTER TABLE requests ADD COLUMN IF NOT EXISTS tpot_ms DOUBLE;            -- mean time per output token after the first
ALTER TABLE requests ADD COLUMN IF NOT EXISTS queue_ms DOUBLE;           -- queued before the engine scheduled it
ALTER TABLE requests ADD COLUMN IF NOT EXISTS finish_reason VARCHAR;     -- stop | length | abort | error | content_filter
ALTER TABLE requests ADD COLUMN IF NOT EXISTS preemptions INTEGER;       -- times the engine evicted and recomputed it
ALTER TABLE requests ADD COLUMN IF NOT EXISTS params JSON;               -- sampling parameters as sent
ALTER TABLE requests ADD COLUMN IF NOT EXISTS template_version VARCHAR;  -- chat template / tokenizer artifact version
ALTER TABLE requests ADD COLUMN IF NOT EXISTS adapter VARCHAR;           -- LoRA adapter / checkpoint served
ALTER TABLE requests ADD COLUMN IF NOT EXISTS prefix_hashes JSON;        -- prompt-prefix block hashes (Mooncake's hash_ids): prefix reuse can be estimated

-- Multiclass and regression endpoints.
ALTER TABLE requests ADD COLUMN IF NOT EXISTS scores JSON;               -- multiclass: class -> probability
ALTER TABLE requests ADD COLUMN IF NOT EXISTS pred_lower DOUBLE;         -- regression: prediction interval, lower
ALTER TABLE requests ADD COLUMN IF NOT EXISTS pred_upper DOUBLE;         -- regression: prediction interval, upper

-- Lineage gains the template artifact (a generative release ships model + template together).
ALTER TABLE lineage ADD COLUMN IF NOT EXISTS template_version VARCHAR;

-- The endpoints catalog: the task of each endpoint, when declared rather than inferred.
-- classes is a JSON array of class names (multiclass); interval_coverage the nominal coverage of
-- [pred_lower, pred_upper] (regression). Like `features`, a catalog: one row per endpoint.
CREATE TABLE IF NOT EXISTS endpoints (
    endpoint          VARCHAR PRIMARY KEY,
    task              VARCHAR NOT NULL CHECK (task IN ('binary', 'multiclass', 'regression', 'generative')),
    positive_class    VARCHAR,
    classes           JSON,
    interval_coverage DOUBLE CHECK (interval_coverage IS NULL OR (interval_coverage > 0 AND interval_coverage < 1))
);
