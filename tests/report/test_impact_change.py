"""The postmortem's impact table prints a rate's ratio as its other rows do (x1.5), with
trailing zeros dropped as the findings' times() does."""

from toolkit.report.postmortem import _impact_change


def test_a_rate_that_doubled_reads_x2_not_x2_00():
    assert _impact_change("rate", 0.01, 0.02) == "+0.01 (x2)"
    assert _impact_change("rate", 0.01, 0.0125) == "+0.0025 (x1.25)"
    assert _impact_change("rate", 0.04, 0.01) == "-0.03 (x0.25)"
    # no ratio from a zero base
    assert _impact_change("rate", 0.0, 0.01) == "+0.01"
