"""Reports adapt to the model's task (issue 24): multiclass confusion change, regression
residuals and outputs, rendered end to end (papermill + nbconvert) without a raw value."""

from __future__ import annotations

import numpy as np
import pytest

import toolkit as tk
from tests.report.conftest import ingested_case
from tests.report.test_clean_reports import _assert_clean
from toolkit.report.tasks import confusion_change_figure, residuals_figure

pytestmark = pytest.mark.slow


def _case(folder, task, mode, seed):
    return ingested_case(folder, mode, seed=seed, rows=20_000, task=task)[0]


@pytest.fixture(scope="module")
def multiclass_db(tmp_path_factory):
    return _case(tmp_path_factory.mktemp("mc"), "multiclass", "concept_drift", 2)


@pytest.fixture(scope="module")
def regression_db(tmp_path_factory):
    return _case(tmp_path_factory.mktemp("reg"), "regression", "bad_release", 2)


def test_confusion_change_heatmap_shows_the_diagnostic_s_changes(multiclass_db):
    pm = tk.report.Postmortem.open(multiclass_db)
    performance = pm.result.diagnosis["model.performance"]
    change = performance.confusion_change
    fig = confusion_change_figure(performance)
    mesh = fig.axes[0].collections[0]
    classes = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    grid = np.asarray(mesh.get_array()).reshape(len(classes), len(classes))
    predicted = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    for row in change.itertuples():
        if row.label in classes and row.prediction in predicted:
            cell = grid[classes.index(row.label), predicted.index(row.prediction)]
            assert cell == pytest.approx(100 * row.change)
    html = pm.task_details().fragment
    assert "<img" in html and "Largest moves between classes" in html
    largest = change[change["label"] != change["prediction"]].iloc[0]
    assert str(largest["label"]) in html and str(largest["prediction"]) in html
    # the simulator logs per-class scores: the reliability diagram per class follows
    calibration = pm.result.diagnosis["model.calibration"]
    assert not calibration.class_bins.empty
    assert html.count("<img") == 2 and "alt='reliability per class'" in html


def test_regression_residuals_outputs_and_slices(regression_db):
    pm = tk.report.Postmortem.open(regression_db)
    calibration = pm.result.diagnosis["model.calibration"]
    fig = residuals_figure(calibration)
    bins = calibration.residual_bins
    heights = [p.get_height() for p in fig.axes[0].patches
               if str(p.get_gid()).startswith("residuals:")]
    expected = np.r_[*(bins[bins["window"] == w]["n"] / bins[bins["window"] == w]["n"].sum()
                       for w in ("baseline", "incident"))]
    assert np.allclose(sorted(heights), sorted(expected))
    assert "<img" in pm.task_details().fragment
    shift = pm.result.diagnosis["model.prediction_shift"]
    ax = shift.plot()
    assert "Predicted values" in ax.get_title()
    shares = [p.get_height() for p in ax.patches]
    assert sum(shares) == pytest.approx(2.0)  # each window's shares sum to one
    # the affected slices speak of MAE, not accuracy, for a regression endpoint
    slices = pm.affected_slices().fragment
    assert "accuracy" not in slices.lower() or "MAE" in slices


@pytest.mark.parametrize("which", ["multiclass", "regression"])
def test_task_postmortems_render_cleanly(tmp_path, which, multiclass_db, regression_db):
    db = multiclass_db if which == "multiclass" else regression_db
    rendered = tk.render_postmortem(db, tmp_path / "pm", incident_id=f"INC-{which}")
    _assert_clean(rendered)
    page = rendered.html.read_text()
    assert ("Largest moves between classes" in page and 'alt="confusion change"' in page) \
        if which == "multiclass" else 'alt="residual distribution"' in page
