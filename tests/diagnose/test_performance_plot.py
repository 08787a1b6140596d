"""model.performance's figure on a sparsely labelled case: no time bucket holds MIN_LABELS
labels, so there is no timeline; the figure shows the per-window accuracy with its Wilson
interval instead of a blank "not assessed" panel beside a table that has the numbers (a lake
postmortem of a 2,000-row case showed 'not assessed: no data' under an impact table of
98.2% -> 11.9%)."""

from __future__ import annotations

import importlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from tests.diagnose.conftest import make_case

performance = importlib.import_module("toolkit.diagnose.model.performance")

START = pd.Timestamp("2026-03-01", tz="UTC")
BASELINE = (START, START + pd.Timedelta("2D"))
INCIDENT = (START + pd.Timedelta("2D"), START + pd.Timedelta("4D"))


def test_sparse_labels_plot_the_windows_accuracy_with_intervals():
    rng = np.random.default_rng(5)
    n = 600
    ts = START + pd.to_timedelta(np.sort(rng.uniform(0, 4 * 86_400, n)), unit="s")
    label = rng.choice(["0", "1"], n)
    right = rng.uniform(size=n) < np.where(ts >= INCIDENT[0], 0.6, 0.95)
    ids = [f"r{i}" for i in range(n)]
    con = make_case(
        requests=pd.DataFrame({"request_id": ids, "ts": ts,
                               "prediction": np.where(right, label,
                                                      np.where(label == "1", "0", "1"))}),
        labels=pd.DataFrame({"request_id": ids, "label": label}))
    result = performance.model_performance(con, BASELINE, INCIDENT)
    assert result.timeline.empty and not result.table.empty

    ax = result.plot()
    bars = ax.patches
    assert [b.get_height() for b in bars] == pytest.approx(
        [result.value("baseline", "accuracy"), result.value("incident", "accuracy")])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "incident"]
    assert "too few labels per time bucket" in ax.get_title()
    # the error bars span the Wilson interval of each window
    errorbar = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    segments = errorbar.lines[2][0].get_segments()
    spans = [v for seg in segments for v in (seg[:, 1].min(), seg[:, 1].max())]
    assert spans == pytest.approx([result.value(w, side) for w in ("baseline", "incident")
                                   for side in ("accuracy_lo", "accuracy_hi")])
    plt.close(ax.figure)
