# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A real serving log: failing checkpoints in Alibaba's Stable Diffusion service (SoCC'25)
#
# Alibaba's GenAI trace (`alibaba/clusterdata`, cluster-trace-v2026-GenAI) logs every
# image-generation request of a production diffusion service: status, execution time, prompt
# length, checkpoint and LoRA count. A few hundred requests failed. Are the failures spread
# evenly, or do they concentrate on something? The failure-concentration diagnostic tests every
# categorical attribute of the requests without being told which one to look at.
#
# The file is not shipped with the toolkit: point `realdata` at a folder holding
# `alibaba_genai_2026/lora_request_trace.csv.gz`.

# %% tags=["parameters"]
workdir = "out/examples/alibaba-genai"
realdata = "../shared/realdata"

# %%
from pathlib import Path

import toolkit as tk

source = Path(realdata) / "alibaba_genai_2026" / "lora_request_trace.csv.gz"
work = Path(workdir)
work.mkdir(parents=True, exist_ok=True)
db = work / "alibaba.duckdb"
db.unlink(missing_ok=True)
con = tk.connect(db)
# the shipped mapping: SUCCEED / FAILED statuses, exec_time_seconds as latency, the checkpoint
# as the model version, request attributes kept as features
report = tk.load(con, source, mapping="alibaba-genai")
report.to_frame()[["source", "table", "rows_read", "rows_loaded", "rows_rejected"]]

# %% [markdown]
# ## Failures per checkpoint, in plain SQL

# %%
con.sql("""
    SELECT model_version AS checkpoint, count(*) AS requests,
           count_if(status = 'error') AS failed,
           round(avg(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 3) AS failure_share
    FROM requests GROUP BY ALL HAVING failed > 0 ORDER BY failed DESC LIMIT 10
""").df()

# %% [markdown]
# ## Classify
#
# Without windows the classifier locates the incident itself, then runs every diagnostic on
# the baseline and incident it found.

# %%
result = tk.classify_incident(con)
print(result.summary())

# %% [markdown]
# ## Where failures concentrate
#
# The failure-concentration diagnostic tests every categorical attribute value by value
# (Fisher's exact test against the other values, Holm-adjusted over all values tested) and
# reports the values whose requests fail far more often than the rest's, with when they first
# failed. Here it finds the checkpoints that fail on every request.

# %%
segments = result.diagnosis["case.segments"]
columns = ["attribute", "value", "requests", "failures", "failure_rate", "rest_rate",
           "p_adjusted", "always_fails", "first_failure"]
segments.to_frame().query("flagged")[columns]

# %%
segments.plot();

# %%
[f.summary for f in segments.findings()]

# %%
con.close()
