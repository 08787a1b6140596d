# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Quickstart: from exported logs to a verdict
#
# This notebook walks the whole pipeline on a simulated incident: **load** exported logs into a
# DuckDB case, **query** it with plain SQL, **diagnose** it, and **classify** the incident.
# Replace the simulated export with your own folder of `requests`, `labels`, `events`,
# `metrics`... files (or a platform export) to investigate a real incident.

# %% tags=["parameters"]
workdir = "out/examples/quickstart"
rows = 20_000
seed = 3

# %%
from pathlib import Path

import toolkit as tk

work = Path(workdir)
case = tk.simulate.make_case("version_skew", seed=seed, rows=rows)
raw = tk.simulate.write_case(case, work / "raw")
sorted(p.name for p in raw.iterdir())

# %% [markdown]
# ## 1. Load
#
# `tk.load` reads every file DuckDB can read (CSV, Parquet, JSONL, platform formats) into the
# canonical tables. Rows that cannot be loaded are kept in `rejects`; `rows_read = rows_loaded
# + rows_rejected` for every file. Loading the same file again changes nothing.

# %%
db = work / "case.duckdb"
db.unlink(missing_ok=True)
con = tk.connect(db)
report = tk.load(con, raw)
report.to_frame()[["source", "table", "status", "rows_read", "rows_loaded", "rows_rejected"]]

# %%
tk.summarize(con)

# %% [markdown]
# ## 2. Query with plain DuckDB SQL
#
# The case is an ordinary DuckDB file; views and macros such as `version_mix` and
# `latency_timeline(bucket)` are stored in it, so the `duckdb` CLI can use them too.

# %%
con.sql("SELECT * FROM version_mix").df()

# %%
con.sql("""
    SELECT bucket_start, labelled, round(accuracy, 3) AS accuracy
    FROM accuracy_timeline(INTERVAL 6 HOUR)
    ORDER BY bucket_start DESC
    LIMIT 8
""").df()

# %% [markdown]
# ## 3. Diagnose
#
# Every diagnostic compares a baseline window with the incident window, aggregating in DuckDB.
# Here we take the windows from the simulation's ground truth.

# %%
truth = case.truth()
baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])
drift = tk.diagnose.feature_drift(con, baseline, incident)
drift

# %%
drift.plot();

# %%
tk.diagnose.feature_permutation(con, baseline, incident).mapping

# %% [markdown]
# ## 4. Classify
#
# Without windows, the classifier locates the incident in the data first.

# %%
result = tk.classify_incident(con)
print(result.summary())

# %%
assert result.failure_mode == truth["failure_mode"], (result.failure_mode, truth)
con.close()
