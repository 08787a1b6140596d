"""Contract errors in a request log sampled 1 in 50 (issue 22: an API contract mismatch with 20
logged incident requests stayed undetermined: the suspect needed 20 contract errors, and the
normal approximation is wrong at a handful)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.diagnose.conftest import make_case
from toolkit.diagnose.integration.client_errors import _fisher_greater, errors_by_client

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(days=5))
INCIDENT = (T0 + timedelta(days=5), T0 + timedelta(days=5, hours=20))


def sparse(new_errors: int, new_requests: int = 8, other_errors: int = 0,
           other_requests: int = 12) -> pd.DataFrame:
    """300 logged baseline requests of three clients (one background server error), then 20
    logged incident requests: ``new_requests`` of web-2 (a new release) with ``new_errors``
    HTTP 422s, the rest on the old clients with ``other_errors`` of them."""
    rng = np.random.default_rng(7)
    base_ts = BASELINE[0] + pd.to_timedelta(np.sort(rng.uniform(0, 5 * 86400, 300)), unit="s")
    n_inc = new_requests + other_requests
    inc_ts = INCIDENT[0] + pd.to_timedelta(np.sort(rng.uniform(0, 20 * 3600, n_inc)), unit="s")
    base_clients = np.array(["web-1", "ios-1", "android-1"])[np.arange(300) % 3]
    order = rng.permutation(n_inc)
    inc_clients = np.where(order < new_requests, "web-2",
                           np.array(["ios-1", "android-1"])[order % 2])
    clients = np.r_[base_clients, inc_clients]
    contract = np.zeros(300 + n_inc, dtype=bool)
    new_idx = 300 + np.flatnonzero(inc_clients == "web-2")
    old_idx = 300 + np.flatnonzero(inc_clients != "web-2")
    contract[new_idx[:new_errors]] = True
    contract[old_idx[:other_errors]] = True
    server = np.zeros_like(contract)
    server[17] = True
    http = np.where(contract, 422, np.where(server, 500, 200))
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(len(clients))],
        "ts": np.r_[base_ts, inc_ts], "client_version": clients,
        "status": np.where(contract | server, "error", "ok"), "http_status": http,
        "error_type": np.where(contract, "ValidationError", np.where(server, "internal", None))})


def test_six_logged_contract_errors_on_a_new_client_are_a_finding():
    # 6 of web-2's 8 logged incident requests fail validation, none of the 12 others:
    # Fisher p = C(8,6) / C(20,6) = 7.2e-4
    result = errors_by_client(make_case(requests=sparse(6)), BASELINE, INCIDENT)
    assert result.suspect == "web-2"
    (finding,) = result.findings()
    assert finding.severity == "high" and finding.evidence["new"]
    assert finding.evidence["contract_errors"] == 6 and finding.evidence["requests"] == 8
    exact = stats.fisher_exact([[6, 2], [0, 12]], alternative="greater").pvalue
    assert finding.evidence["pvalue"] == pytest.approx(exact, rel=1e-9)
    assert exact == pytest.approx(28 / 38760)


@pytest.mark.parametrize("new_errors, other_errors", [(4, 0), (3, 2)])
def test_a_few_errors_that_chance_explains_are_no_finding(new_errors, other_errors):
    # 4 of 8 against 0 of 12: Fisher p = C(8,4)/C(20,4) = 0.014; 3 of 8 against 2 of 12: 0.25
    result = errors_by_client(make_case(requests=sparse(new_errors, other_errors=other_errors)),
                              BASELINE, INCIDENT)
    assert result.findings() == []


def test_fisher_greater_matches_scipy():
    for k, n, ko, no in [(6, 8, 0, 12), (30, 200, 4, 1800), (1, 1, 0, 5), (0, 5, 3, 9)]:
        exact = stats.fisher_exact([[k, n - k], [ko, no - ko]], alternative="greater").pvalue
        assert _fisher_greater(k, n, ko, no) == pytest.approx(exact, rel=1e-9)


def test_the_suspect_timeline_is_a_signal_only_when_its_errors_make_a_finding():
    # 3 of 8 against 2 of 12 (chance explains it): web-2 is the version with most errors, but
    # its rate stepping from 0 in one bucket is no incident sign for the window detector
    noise = errors_by_client(make_case(requests=sparse(3, other_errors=2)), BASELINE, INCIDENT)
    assert noise.suspect == "web-2" and noise.findings() == []
    assert "client_errors.suspect_error_rate" not in set(noise.signals()["signal"])
    assert "client_errors.contract_error_rate" in set(noise.signals()["signal"])
    # 6 of 8 against 0 of 12: a finding, and its timeline is the suspect's own rate
    real = errors_by_client(make_case(requests=sparse(6)), BASELINE, INCIDENT)
    signals = real.signals()
    mine = signals[signals["signal"] == "client_errors.suspect_error_rate"]
    tl = real.timeline[real.timeline["client_version"] == "web-2"]
    assert len(mine) == len(tl) > 0
    assert mine["value"].max() == tl["contract_error_rate"].max() > 0
