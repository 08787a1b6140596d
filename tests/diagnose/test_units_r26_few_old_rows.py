"""A unit change fixed a few hours before a detected window ends (issue 22, R26). Varied
tuning unit_change s4 (minutes -> seconds, x60, fixed after 25 h) read covariate_shift with a
detected window of IoU 0.79: it opens in the new unit and runs 4 h past the fix. The whole
window's factor (51) is diluted by those rows, and the step back was not tested, because the
rows after it, in the old unit, are 26 (13 per bucket on a log sampled 1 in 14), under the 30
each side of a step needed. The side that holds the old unit only corroborates the step (the
rescaled side is still matched against the baseline with 30 values or more): with 10 to 29
values it must pass the two Kolmogorov-Smirnov checks instead of a factor match."""

from __future__ import annotations

import pytest

from toolkit.diagnose.data.units import unit_change

DETECTED = ("2026-02-28T15:00:00Z", "2026-03-01T18:00:00Z")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    from toolkit.simulate import ingest_case, make_case

    simulated = make_case("unit_change", seed=4, rows=60_000, world="varied")
    con = ingest_case(simulated, tmp_path_factory.mktemp("unit_change_4"))
    yield con, simulated.truth()
    con.close()


@pytest.mark.slow
def test_the_step_back_is_tested_with_few_rows_in_the_old_unit(case):
    con, truth = case
    assert truth["injected"]["feature"] == "minutes_since_last_visit"
    result = unit_change(con, tuple(truth["baseline"]), DETECTED)
    (finding,) = result.findings()  # none before
    assert finding.evidence["feature"] == "minutes_since_last_visit"
    assert finding.evidence["matched"] == 60.0
    assert "until a step back at 2026-03-01 14:37" in finding.evidence["meaning"]
