# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Data pathway: a feature changes unit
#
# An upstream producer starts sending one feature in another unit (seconds to milliseconds,
# kilometres to miles...). The schema stays valid, so nothing fails loudly: the model simply
# sees values a thousand times larger. The drift diagnostic shows *that* the feature moved;
# the unit-change diagnostic shows *how*: by a known unit factor.

# %% tags=["parameters"]
workdir = "out/examples/data"
rows = 20_000
seed = 2

# %%
import toolkit as tk

case = tk.simulate.make_case("unit_change", seed=seed, rows=rows)
con = tk.simulate.ingest_case(case, workdir)
truth = case.truth()
baseline, incident = "/".join(truth["baseline"]), "/".join(truth["incident"])

# %%
drift = tk.diagnose.feature_drift(con, baseline, incident)
drift.table[["feature", "kind", "psi", "ks", "wasserstein", "severity"]].head(6)

# %%
drift.plot();

# %%
units = tk.diagnose.unit_change(con, baseline, incident)
units.table

# %%
for finding in units.findings():
    print(finding.summary)

# %%
result = tk.classify_incident(con, incident=incident, baseline=baseline)
print(result.summary())
assert result.failure_mode == "unit_change"
con.close()
