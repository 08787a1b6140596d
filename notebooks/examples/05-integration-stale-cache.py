# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Integration pathway: a cache serves the old model for three days
#
# A new model ships, but the prediction cache in front of it has a 72-hour TTL and is not
# flushed. Cache hits keep serving the previous model's answers until they expire. The cache
# diagnostic compares the model version behind each cached answer with the deployed one.

# %% tags=["parameters"]
workdir = "out/examples/integration"
rows = 30_000
seed = 6

# %%
import toolkit as tk

case = tk.simulate.make_case(None, seed=seed, rows=rows, preset="stale-cache-72h")
con = tk.simulate.ingest_case(case, workdir)
truth = case.truth()
baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])

# %%
con.sql("""
    SELECT cache_model_version, model_version, count(*) AS cached_answers
    FROM requests WHERE cache_hit GROUP BY ALL ORDER BY cached_answers DESC
""").df()

# %%
cache = tk.diagnose.cache_staleness(con, baseline, incident)
cache.headline()

# %%
cache.plot();

# %%
result = tk.classify_incident(con, incident=incident, baseline=baseline)
print(result.summary())
assert result.failure_mode == "cache_staleness"
con.close()
