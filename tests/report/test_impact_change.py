"""The postmortem's impact table prints a rate's change with the findings' ratio form."""

from toolkit.report.postmortem import _impact_change


def test_a_rate_that_doubled_reads_2x_not_x2_00():
    assert _impact_change("rate", 0.01, 0.02) == "+0.01 (2x)"
    assert _impact_change("rate", 0.01, 0.0125) == "+0.0025 (1.25x)"
    assert _impact_change("rate", 0.04, 0.01) == "-0.03 (0.25x)"
    # no ratio from a zero base
    assert _impact_change("rate", 0.0, 0.01) == "+0.01"
