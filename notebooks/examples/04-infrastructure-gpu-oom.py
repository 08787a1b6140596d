# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Infrastructure pathway: a 16 GB GPU runs out of memory under load
#
# At 40 concurrent requests the GPU's memory is full: latency goes from 180 ms to seconds and
# pods are OOM-killed. Latency against concurrency locates the knee; memory against its limit
# and the OOM kills confirm the cause.

# %% tags=["parameters"]
workdir = "out/examples/infrastructure"
rows = 30_000
seed = 5

# %%
from pathlib import Path

import toolkit as tk

work = Path(workdir)
case = tk.simulate.make_case(None, seed=seed, rows=rows, preset="gpu-oom-16gb")
db = work / "case.duckdb"
db.unlink(missing_ok=True)
con = tk.connect(db)
tk.load(con, tk.simulate.write_case(case, work / "raw"))
truth = case.truth()
baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])

# %%
latency = tk.diagnose.latency_profile(con, baseline, incident)
latency.table

# %%
latency.plot();

# %%
capacity = tk.diagnose.latency_vs_concurrency(con, baseline, incident)
capacity.headline()

# %%
capacity.plot();

# %%
memory = tk.diagnose.memory_pressure(con, baseline, incident)
for finding in memory.findings():
    print(f"[{finding.severity}] {finding.summary}")

# %%
result = tk.classify_incident(con, incident=incident, baseline=baseline)
print(result.summary())
assert result.pathway == "infrastructure"
con.close()
