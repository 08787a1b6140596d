"""The per-class reliability diagrams of a multiclass endpoint draw the calibration
diagnostic's class bins, the class whose ECE rose most first."""

from __future__ import annotations

import importlib
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

from tests.diagnose.conftest import make_case
from toolkit.report.tasks import class_reliability_figure

matplotlib.use("Agg")
calibration = importlib.import_module("toolkit.diagnose.model.calibration")

CLASSES = ["ant", "bee", "cat", "dog"]
N = 2000


def _result():
    rng = np.random.default_rng(7)
    y = rng.choice(CLASSES, 2 * N)
    logits = rng.normal(size=(2 * N, 4))
    logits[np.arange(2 * N), [CLASSES.index(v) for v in y]] += 1.5
    logits[N:, 2] *= 5.0  # the incident: class 'cat' over-confident
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ts = pd.date_range("2026-03-01", periods=2 * N, freq="min", tz="UTC")
    ids = [f"r{i}" for i in range(2 * N)]
    con = make_case(
        requests=pd.DataFrame({"request_id": ids, "ts": ts,
                               "prediction": np.array(CLASSES)[p.argmax(axis=1)],
                               "score": p.max(axis=1),
                               "scores": [json.dumps(dict(zip(CLASSES, map(float, r),
                                                              strict=True))) for r in p]}),
        labels=pd.DataFrame({"request_id": ids, "label": y}))
    return calibration.calibration(con, (ts[0], ts[N]), (ts[N], ts[-1] + pd.Timedelta("1min")))


def test_one_panel_per_class_drawing_the_class_bins():
    result = _result()
    fig = class_reliability_figure(result)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(CLASSES)
    ece = result.classwise.pivot_table(index="class", columns="window", values="ece")
    rise = (ece["incident"] - ece["baseline"]).sort_values(ascending=False)
    assert panels[0].get_title().startswith(f"{rise.index[0]}: ECE")
    assert rise.index[0] == "cat"
    for ax in panels:
        cls = ax.get_title().split(":")[0]
        assert f"{ece.loc[cls, 'baseline']:.3f} -> {ece.loc[cls, 'incident']:.3f}" in \
            ax.get_title()
        for line in ax.get_lines()[1:]:
            _, _, window = line.get_gid().split(":")
            part = result.class_bins[(result.class_bins["class"] == cls)
                                     & (result.class_bins["window"] == window)
                                     & (result.class_bins["n"] > 0)]
            np.testing.assert_allclose(line.get_xdata(), part["confidence"])
            np.testing.assert_allclose(line.get_ydata(), part["frequency"])
    matplotlib.pyplot.close(fig)


def test_no_figure_without_class_bins():
    result = _result()
    from dataclasses import replace

    assert class_reliability_figure(replace(result, class_bins=pd.DataFrame())) is None
    assert class_reliability_figure(object()) is None


@pytest.mark.parametrize("classes", [12])
def test_many_classes_show_the_largest_rises_and_say_the_rest(classes):
    rng = np.random.default_rng(1)
    names = [f"k{i:02d}" for i in range(classes)]
    per_class = pd.DataFrame({"window": ["baseline"] * classes + ["incident"] * classes,
                              "class": names * 2,
                              "ece": np.r_[np.full(classes, 0.01), rng.uniform(0, 0.1, classes)],
                              "n": 100})
    bins = pd.DataFrame({"window": ["baseline", "incident"] * classes,
                         "class": np.repeat(names, 2), "bin": 0, "lo": 0.0, "hi": 0.1,
                         "n": 10, "confidence": 0.05, "frequency": 0.05})

    class Result:
        class_bins = bins
        classwise = per_class

    fig = class_reliability_figure(Result())
    panels = [ax for ax in fig.axes if ax.get_visible()]
    top = per_class[per_class["window"] == "incident"].sort_values("ece", ascending=False)
    assert [ax.get_title().split(":")[0] for ax in panels] == top["class"].head(9).tolist()
    assert "3 more classes not shown" in fig._suptitle.get_text()
    matplotlib.pyplot.close(fig)
