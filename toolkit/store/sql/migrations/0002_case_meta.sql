-- Version 2: free-form facts about the case that no log carries (serving mode, SLOs, notes).
-- Keys used by the toolkit: serving_mode ('real-time' | 'batch'), latency_slo_ms,
-- decision_threshold. Values are JSON so numbers stay numbers.
CREATE TABLE IF NOT EXISTS case_meta (
    key   VARCHAR PRIMARY KEY,
    value JSON
);
