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
import toolkit as tk

case = tk.simulate.make_case(None, seed=seed, rows=rows, preset="gpu-oom-16gb")
con = tk.simulate.ingest_case(case, workdir)
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
