"""Shared, cached simulated cases (generation is deterministic, so caching is safe)."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from toolkit import simulate

#: Request rows of the per-mode cases: enough for every signal, small enough to stay fast.
ROWS = 20_000


class LazyTables:
    """``tables[name]`` of a case, each generated on first use (metrics are the bulky ones)."""

    def __init__(self, case) -> None:
        self.case = case
        self._cache: dict[str, pd.DataFrame | None] = {}

    def __getitem__(self, name: str) -> pd.DataFrame | None:
        if name not in self._cache:
            case = self.case
            if name in ("requests", "labels"):
                self._cache["requests"] = pd.concat(list(case.request_chunks()),
                                                    ignore_index=True)
                chunks = list(case.label_chunks())
                self._cache["labels"] = pd.concat(chunks, ignore_index=True) if chunks else None
            elif name == "metrics":
                self._cache[name] = pd.concat(list(case.metric_chunks()), ignore_index=True)
            else:
                self._cache[name] = getattr(case, name)()
        return self._cache[name]


@functools.cache
def generated(mode: str | None, seed: int = 0, rows: int = ROWS, preset: str | None = None,
              confounders: bool = True):
    """``(case, tables, truth)`` for one simulated case, made once per test process."""
    case = simulate.make_case(mode, seed=seed, rows=rows, preset=preset, confounders=confounders)
    return case, LazyTables(case), case.truth()


@pytest.fixture
def make():
    return generated
