# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Model pathway: an 8-bit model that is confidently wrong
#
# A quantized release keeps accuracy within about a point of the full-precision model, so an
# accuracy gate lets it through. But its scores become overconfident: more wrong answers land
# above the 0.85 decision threshold. Calibration (ECE, reliability diagrams) shows it.

# %% tags=["parameters"]
workdir = "out/examples/model"
rows = 30_000
seed = 4

# %%
import toolkit as tk

case = tk.simulate.make_case(None, seed=seed, rows=rows, preset="int8-overconfidence")
con = tk.simulate.ingest_case(case, workdir)
truth = case.truth()
baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])

# %%
performance = tk.diagnose.model_performance(con, baseline, incident)
performance.table[["window", "labelled", "accuracy", "accuracy_lo", "accuracy_hi", "precision"]]

# %%
calibration = tk.diagnose.calibration(con, baseline, incident)
calibration.table[["window", "accuracy", "ece", "ece_equal_mass", "mce", "brier",
                   "confident_error_share"]]

# %%
calibration.plot();

# %%
calibration.by_version[["window", "model_version", "labelled", "accuracy", "ece"]]

# %%
result = tk.classify_incident(con, incident=incident, baseline=baseline)
print(result.summary())
assert result.failure_mode == "calibration_collapse"
con.close()
