"""Errors by client version: numbers, contract mismatch after a client release, healthy rollout."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.diagnose.integration.client_errors import ID, VALIDATION_PATTERN, errors_by_client

T0 = pd.Timestamp("2026-03-01T00:00Z")
BASELINE = (T0, T0 + timedelta(hours=12))
INCIDENT = (T0 + timedelta(hours=12), T0 + timedelta(hours=18))


def _requests(n=2160, *, seed=1, client=None, bad=None, noise=0.01):
    """One request every 30 s for 18 h; ``bad(k, client)`` marks contract errors."""
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    ts = T0 + pd.to_timedelta(k * 30, unit="s")
    clients = client(k) if client else np.array(["web-1", "ios-1", "android-1"])[k % 3]
    contract = bad(k, clients, rng) if bad else np.zeros(n, dtype=bool)
    server = rng.random(n) < noise  # background server errors on every client
    http = np.where(contract, rng.choice([400, 422], n), np.where(server, 500, 200))
    status = np.where(contract | server, "error", "ok")
    error_type = np.where(contract, "ValidationError", np.where(server, "internal", None))
    return pd.DataFrame({"request_id": [f"r{i}" for i in k], "ts": ts, "client_version": clients,
                         "status": status, "http_status": http, "error_type": error_type})


def _release(k):
    """web-2 replaces web-1 at 12:00."""
    names = np.array(["web-1", "ios-1", "android-1"])[k % 3]
    return np.where((names == "web-1") & (k >= 1440), "web-2", names)


def test_numbers_match_pandas():
    requests = _requests(client=_release, bad=lambda k, c, rng: (c == "web-2")
                         & (rng.random(len(k)) < 0.3))
    requests.loc[5, ["http_status", "error_type", "status"]] = [429, None, "error"]  # not contract
    requests.loc[7, ["http_status", "error_type", "status"]] = [200, "schema_mismatch", "error"]
    con = make_case(requests=requests)
    result = errors_by_client(con, BASELINE, INCIDENT)
    frame = requests.copy()
    frame["window"] = np.select(
        [(frame.ts >= BASELINE[0]) & (frame.ts < BASELINE[1]),
         (frame.ts >= INCIDENT[0]) & (frame.ts < INCIDENT[1])], ["baseline", "incident"], None)
    frame = frame.dropna(subset=["window"])
    http = frame["http_status"]
    validation = frame["error_type"].fillna("").str.lower().str.contains(VALIDATION_PATTERN)
    frame["is_4xx"] = http.between(400, 499)
    frame["validation"] = validation
    frame["contract"] = (frame["is_4xx"] & ~http.isin([408, 429])) | validation
    frame["failed"] = frame["status"] == "error"
    expected = frame.groupby(["window", "client_version"]).agg(
        requests=("request_id", "size"), error_rate=("failed", "mean"),
        http_4xx_rate=("is_4xx", "mean"), validation_rate=("validation", "mean"),
        contract_error_rate=("contract", "mean"), contract_errors=("contract", "sum"),
        first_in_window=("ts", "min")).reset_index()
    got = result.table.merge(expected, on=["window", "client_version"], suffixes=("", "_pd"))
    assert len(got) == len(result.table) == len(expected)
    assert (got["requests"] == got["requests_pd"]).all()
    for column in ("error_rate", "http_4xx_rate", "validation_rate", "contract_error_rate"):
        np.testing.assert_allclose(got[column], got[f"{column}_pd"], err_msg=column)
    inc = got[got["window"] == "incident"]
    share = inc["contract_errors"] / inc["contract_errors"].sum()
    np.testing.assert_allclose(inc["error_share"], share)
    np.testing.assert_allclose(inc["lift"], share / (inc["requests"] / inc["requests"].sum()))
    first = requests.groupby("client_version")["ts"].min()
    assert (got["first_seen"] == got["client_version"].map(first)).all()
    assert got.set_index(["window", "client_version"]).loc[("incident", "web-2"), "new"]
    assert not got.set_index(["window", "client_version"]).loc[("incident", "ios-1"), "new"]
    assert result.rate("incident") == pytest.approx(frame.loc[
        frame.window == "incident", "contract"].mean())


def test_contract_errors_on_a_new_client_are_high():
    requests = _requests(client=_release, bad=lambda k, c, rng: (c == "web-2")
                         & (rng.random(len(k)) < 0.3))
    events = pd.DataFrame({"ts": [T0 + timedelta(hours=12)], "kind": ["deploy"],
                           "artifact": ["client"], "version": ["web-2"]})
    con = make_case(requests=requests, events=events)
    result = errors_by_client(con, BASELINE, INCIDENT)
    assert result.suspect == "web-2"
    (finding,) = result.findings()
    assert finding.id == "integration.client_contract_errors"
    assert finding.severity == "high"
    assert finding.evidence["new"] and finding.evidence["announced"]
    assert finding.evidence["error_share"] > 0.9
    assert finding.statistic == pytest.approx(0.3, abs=0.05)
    assert abs(finding.onset - INCIDENT[0].to_pydatetime()) <= timedelta(minutes=10)
    assert finding.to_dict()["evidence"]["client_version"] == "web-2"
    signals = result.signals()
    assert {"client_errors.contract_error_rate", "client_errors.suspect_error_rate"} == set(
        signals["signal"])


def test_clean_client_rollout_gives_no_finding():
    # web-2 rolls out with the same background error rate as everyone else
    requests = _requests(client=_release, noise=0.02)
    con = make_case(requests=requests)
    result = errors_by_client(con, BASELINE, INCIDENT)
    assert result.findings() == []
    assert result.table.set_index(["window", "client_version"]).loc[("incident", "web-2"), "new"]


def test_old_client_breaking_is_medium_and_chronic_is_low():
    # the server changed the contract at 12:00: ios-1 (an old client) starts failing
    requests = _requests(bad=lambda k, c, rng: (c == "ios-1") & (k >= 1440)
                         & (rng.random(len(k)) < 0.25))
    result = errors_by_client(make_case(requests=requests), BASELINE, INCIDENT)
    (finding,) = result.findings()
    assert finding.severity == "medium" and not finding.evidence["new"]
    assert abs(finding.onset - INCIDENT[0].to_pydatetime()) <= timedelta(minutes=15)
    assert finding.id in result.refined_onsets

    chronic = _requests(bad=lambda k, c, rng: (c == "ios-1") & (rng.random(len(k)) < 0.25))
    result = errors_by_client(make_case(requests=chronic), BASELINE, INCIDENT)
    assert [f.severity for f in result.findings()] == ["low"]


def test_missing_inputs_are_not_assessed():
    requests = _requests(n=400)
    result = errors_by_client(make_case(requests=requests.drop(columns=["client_version"])),
                              (T0, T0 + timedelta(hours=1)),
                              (T0 + timedelta(hours=1), T0 + timedelta(hours=3)))
    assert result.not_assessed[0].check == ID and "client_version" in result.not_assessed[0].reason
    assert result.findings() == [] and result.table.empty

    outcome_less = requests.drop(columns=["status", "http_status", "error_type"])
    result = errors_by_client(make_case(requests=outcome_less), (T0, T0 + timedelta(hours=1)),
                              (T0 + timedelta(hours=1), T0 + timedelta(hours=3)))
    assert "status" in result.not_assessed[0].reason and result.findings() == []

    typeless = errors_by_client(make_case(requests=requests.drop(columns=["error_type"])),
                                (T0, T0 + timedelta(hours=1)),
                                (T0 + timedelta(hours=1), T0 + timedelta(hours=3)))
    assert [g.check for g in typeless.not_assessed] == [f"{ID}.validation"]
    assert not typeless.table.empty

    import toolkit as tk
    assert errors_by_client(tk.connect(), BASELINE, INCIDENT).not_assessed


def test_plot_and_frame():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    requests = _requests(client=_release, bad=lambda k, c, rng: (c == "web-2")
                         & (rng.random(len(k)) < 0.3))
    result = errors_by_client(make_case(requests=requests), BASELINE, INCIDENT)
    assert isinstance(result.plot(), Axes)
    frame = result.to_frame()
    assert (frame["diagnostic"] == ID).all() and len(frame) == len(result.table)
    assert len(result.sql) == 3  # windows, first seen, onset refinement
    assert "web-2" in result._repr_html_()
    import toolkit as tk
    assert isinstance(errors_by_client(tk.connect(), BASELINE, INCIDENT).plot(), Axes)


@pytest.mark.parametrize("seed", [1, 2])
def test_simulated_api_contract_mismatch_is_high_and_none_is_quiet(seed):
    from tests.diagnose.test_versions import simulated

    con, baseline, incident, truth = simulated("api_contract_mismatch", seed)
    (finding,) = errors_by_client(con, baseline, incident).findings()
    assert finding.severity == "high"
    onset = pd.Timestamp(truth["onset"])
    assert abs(pd.Timestamp(finding.onset) - onset) <= timedelta(minutes=15)
    con, baseline, incident, _ = simulated("none", seed)
    assert all(f.severity != "high" for f in errors_by_client(con, baseline, incident).findings())
