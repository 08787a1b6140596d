"""A figure whose default legend placement is slow renders without a warning (L31).

matplotlib warns when placing a legend at its default ("best") location takes over a second.
Under load that made a fresh-clone CI run fail (tests/report/test_clean_reports.py runs the
templates with every warning an error). ``figure_html`` draws and saves figures without it;
other warnings still pass.
"""

from __future__ import annotations

import time
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.legend  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from toolkit.report.html import figure_html  # noqa: E402


def _slow_clock(monkeypatch):
    """Each second reading of the legend module's clock is 10 s after the first."""
    real, calls = time.perf_counter, [0]

    def clock():
        calls[0] += 1
        return real() + (10.0 if calls[0] % 2 == 0 else 0.0)

    monkeypatch.setattr(matplotlib.legend.time, "perf_counter", clock)


def test_a_slow_default_legend_placement_does_not_warn(monkeypatch):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a")
    ax.legend()
    _slow_clock(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        html = figure_html(fig).fragment
    assert html.startswith("<img") and "base64," in html
    # the hint is matplotlib's own: it fires outside figure_html
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a")
    ax.legend()
    with pytest.warns(UserWarning, match="loc=\"best\""):
        fig.canvas.draw()
    plt.close(fig)


def test_other_warnings_still_pass_through(monkeypatch):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])

    def noisy(*args, **kwargs):
        warnings.warn("something else", UserWarning, stacklevel=2)

    monkeypatch.setattr("toolkit.plotting.polish", noisy)
    with pytest.warns(UserWarning, match="something else"):
        figure_html(fig)
