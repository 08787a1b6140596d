# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A real LLM trace: prefix reuse in Kimi's Mooncake serving trace (FAST'25)
#
# Moonshot AI published an hour of its Kimi conversation traffic: arrival times (milliseconds
# from the start), prompt and output lengths, and for every request the hashes of its
# 512-token prompt blocks. Requests that share a prefix (a system prompt, the earlier turns of
# a conversation) share leading block hashes, so the share of blocks an earlier request already
# held is the hit share of a prefix cache that never evicts: an upper bound for what prefix
# caching can save on this traffic, and the baseline against which a prefix-cache regression
# would show.
#
# The file is not shipped with the toolkit: point `realdata` at a folder holding
# `mooncake/conversation_trace.jsonl` (kvcache-ai/Mooncake).

# %% tags=["parameters"]
workdir = "out/examples/mooncake"
realdata = "../shared/realdata"

# %%
from datetime import timedelta
from pathlib import Path

import toolkit as tk

source = Path(realdata) / "mooncake" / "conversation_trace.jsonl"
work = Path(workdir)
work.mkdir(parents=True, exist_ok=True)
db = work / "mooncake.duckdb"
db.unlink(missing_ok=True)
con = tk.connect(db)
# the shipped mapping: relative milliseconds after the trace's release day, token lengths, and
# hash_ids into the canonical prefix_hashes column
report = tk.load(con, source, mapping="mooncake")
report.to_frame()[["source", "table", "rows_read", "rows_loaded", "rows_rejected"]]

# %%
con.sql("""
    SELECT time_bucket(INTERVAL 10 MINUTE, ts) AS ten_min, count(*) AS requests,
           round(avg(input_tokens)) AS prompt_mean, round(avg(output_tokens)) AS output_mean,
           sum(json_array_length(prefix_hashes)) AS prompt_blocks
    FROM requests GROUP BY ALL ORDER BY ten_min
""").df()

# %% [markdown]
# ## Prefix reuse, estimated from the block hashes
#
# The first half-hour against the second, per ten minutes. The share rises as the "cache"
# warms (early requests find little to reuse): no drop, so no finding.

# %%
baseline = "2025-02-21T00:00:00Z/2025-02-21T00:30:00Z"
incident = "2025-02-21T00:30:00Z/2025-02-21T01:00:00Z"
reuse = tk.diagnose.prefix_cache(con, baseline, incident, bucket=timedelta(minutes=10))
reuse.headline()

# %%
reuse.plot();

# %% [markdown]
# ## Prompt mix and verdict
#
# Prompts are a little shorter in the second half-hour, but the decile mix barely moves; with
# no latency, status or labels the classifier has nothing to blame and abstains.

# %%
tk.diagnose.prompt_mix(con, baseline, incident).headline()

# %%
result = tk.classify_incident(con, baseline=baseline, incident=incident)
print(result.summary())

# %%
con.close()
