"""Finding summaries print ratios one way (toolkit.diagnose._format.times): ``12x``, ``2.5x``."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from toolkit.diagnose._format import times

DIAGNOSE = Path(__file__).resolve().parents[2] / "toolkit" / "diagnose"


@pytest.mark.parametrize(("ratio", "digits", "text"), [
    (12.0, 1, "12x"),        # never '12.0x' (the report-cleanliness tests refuse it)
    (12.01, 1, "12x"),
    (2.54, 1, "2.5x"),
    (2.46, 1, "2.5x"),
    (0.999, 1, "1x"),
    (9.96, 1, "10x"),
    (1.25, 2, "1.25x"),
    (1.20, 2, "1.2x"),       # trailing zeros dropped at any precision
    (1.0, 2, "1x"),
    (0.04, 1, "0.04x"),      # rounds to zero: two significant digits instead of '0x'
    (-0.001, 1, "-0.001x"),
    (0.0, 1, "0x"),
    (1234.5, 1, "1,234.5x"),
    (float("nan"), 1, "n/a"),
    (math.inf, 1, "unbounded"),
])
def test_times(ratio, digits, text):
    assert times(ratio, digits) == text


def test_numpy_floats_print_alike():
    np = pytest.importorskip("numpy")
    assert times(np.float64(3.0)) == "3x"
    assert times(np.float32(0.5)) == "0.5x"


def test_no_diagnostic_formats_a_ratio_by_hand():
    """A ``{x:.1f}x`` or ``x{x:.2f}`` in a summary prints '12.0x' for an exact ratio: every
    ratio goes through :func:`times` instead."""
    by_hand = re.compile(r"\{[^{}]*:[,]?\.\d+f\}x\b|\bx\{[^{}]*:[,]?\.\d+f\}")
    found = [f"{path.relative_to(DIAGNOSE)}:{n}: {line.strip()}"
             for path in sorted(DIAGNOSE.rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if by_hand.search(line)]
    assert found == []
