"""End to end on simulated generative endpoints: simulate, write, load into a DuckDB file,
diagnose and classify with detected windows, and read the contract JSON."""

from __future__ import annotations

import json

import pytest

from toolkit.classify import classify_incident
from toolkit.classify.taxonomy import PATHWAY_OF
from toolkit.simulate.generative import ingest_case, make_case


@pytest.mark.parametrize(("mode", "seed"), [("kv_cache_exhaustion", 1),
                                            ("template_mismatch", 1)])
def test_generative_incident_is_classified_with_detected_windows(tmp_path, mode, seed):
    case = make_case(mode, seed=seed, rows=20_000)
    con = ingest_case(case, tmp_path)
    try:
        result = classify_incident(con)
    finally:
        con.close()
    doc = json.loads(result.to_json())
    assert doc["failure_mode"] == mode and doc["pathway"] == PATHWAY_OF[mode]
    assert doc["confidence"] >= 0.6
    # the onset is dated at the injected change (the logged trigger), whatever the detected
    # window's start (a KV cache made too small at night fills up with the morning traffic)
    assert abs((result.onset - case.onset).total_seconds()) <= 900
    assert result.incident.start < case.incident.end and result.incident.end > case.onset
    ids = {f["id"] for f in doc["findings"]}
    expected = {"kv_cache_exhaustion": "infrastructure.kv_cache_pressure",
                "template_mismatch": "integration.template_outside_lineage"}[mode]
    assert expected in ids
    assert doc["remediation"] and all(isinstance(a, str) for a in doc["remediation"])
