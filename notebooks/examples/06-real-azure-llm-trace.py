# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A real LLM trace: Azure's production inference trace (Splitwise, ISCA'24)
#
# One hour of requests to an Azure LLM service, as Microsoft published it: arrival time, prompt
# tokens and generated tokens. No request ids, no latency, no status. What can a forensic look
# say from that alone? Traffic shape and the token mix, hour by hour; the latency and error
# diagnostics must say they cannot assess anything rather than guess.
#
# The file is not shipped with the toolkit: point `realdata` at a folder holding
# `azure_llm_inference_2023/AzureLLMInferenceTrace_conv.csv` (Azure/AzurePublicDataset).

# %% tags=["parameters"]
workdir = "out/examples/azure-llm"
realdata = "../shared/realdata"

# %%
from pathlib import Path

import toolkit as tk

source = Path(realdata) / "azure_llm_inference_2023" / "AzureLLMInferenceTrace_conv.csv"
work = Path(workdir)
work.mkdir(parents=True, exist_ok=True)
db = work / "azure.duckdb"
db.unlink(missing_ok=True)
con = tk.connect(db)
# the shipped mapping: TIMESTAMP (UTC text), ContextTokens, GeneratedTokens
report = tk.load(con, source, mapping="azure-llm")
report.to_frame()[["source", "table", "rows_read", "rows_loaded", "rows_rejected"]]

# %% [markdown]
# ## Arrivals and token mix per five minutes
#
# Plain DuckDB SQL on the case: the trace is bursty at the minute scale and its prompts are
# long-tailed (a p90 several times the median).

# %%
con.sql("""
    SELECT time_bucket(INTERVAL 5 MINUTE, ts) AS five_min, count(*) AS requests,
           round(median(input_tokens)) AS prompt_p50,
           round(quantile_cont(input_tokens, 0.9)) AS prompt_p90,
           round(avg(output_tokens)) AS output_mean
    FROM requests GROUP BY ALL ORDER BY five_min
""").df()

# %% [markdown]
# ## The second half-hour against the first
#
# `prompt_mix` compares the prompt-length distribution (PSI on the first half-hour's deciles,
# KS) and the mix of any request attribute between two windows; `token_latency` measures token
# throughput and says why it cannot measure TTFT or TPOT here.

# %%
import pandas as pd

start = pd.Timestamp(con.execute("SELECT min(ts) FROM requests").fetchone()[0]).floor("min")
half = pd.Timedelta(minutes=30)


def window(a, b):
    return f"{a:%Y-%m-%dT%H:%M:%SZ}/{b:%Y-%m-%dT%H:%M:%SZ}"


baseline, incident = window(start, start + half), window(start + half, start + 2 * half)
mix = tk.diagnose.prompt_mix(con, baseline, incident)
mix.headline()

# %%
mix.plot();

# %%
tokens = tk.diagnose.token_latency(con, baseline, incident)
[(gap.check, gap.reason) for gap in tokens.not_assessed]

# %% [markdown]
# ## Classify
#
# With no latency, status or labels, most checks cannot assess anything; the verdict says
# which ones, and abstains rather than invent an incident.

# %%
result = tk.classify_incident(con, baseline=baseline, incident=incident)
print(result.summary())

# %%
con.close()
