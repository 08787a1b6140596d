"""Schema mismatch read through a detected window that opens minutes before the pipeline
release (issue 22, R26). Varied tuning schema_mismatch s9: the retyped feature is one default
on every request the new pipeline prepares, but the detected window opens 8 min before the
release, so its 7 h hold 96.9% default, under the 98% the "all-NULL / one constant default
right after a pipeline release" rules asked; the verdict read null_injection 0.47 against
schema_mismatch 0.29. "Almost all" is now 95%; a partial null injection (the varied world's
reach at most 86-90%) with a release nearby stays null injection."""

from __future__ import annotations

import pytest

from tests.classify.test_schema_vs_null import ALL_NULL, CONSTANT, deploy, fired, nulls, verdict


@pytest.mark.parametrize(("null_rate", "default_rate", "rule"), [
    (0.0, 0.969, CONSTANT),   # s9's detected window: 96.9% default
    (0.96, 0.0, ALL_NULL),
])
def test_a_window_opened_minutes_before_the_release_still_reads_schema_mismatch(
        null_rate, default_rate, rule):
    result = verdict(nulls(null_rate, default_rate, other=0.0), events=deploy(0.2))
    assert rule in fired(result)
    assert (result.pathway, result.failure_mode) == ("data", "schema_mismatch")


@pytest.mark.parametrize("rate", [0.86, 0.9, 0.93])
def test_a_partial_null_or_default_jump_at_a_pipeline_release_is_not_all_rows(rate):
    for null_rate, default_rate in ((rate, 0.0), (0.0, rate)):
        result = verdict(nulls(null_rate, default_rate, other=0.0), events=deploy(0.2))
        assert not fired(result) & {ALL_NULL, CONSTANT}
