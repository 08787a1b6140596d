"""Same seed, same case (byte for byte); different seeds, different cases; bounded memory."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from toolkit import simulate
from toolkit.errors import InvalidParameterError
from toolkit.simulate.rows import CHUNK_ROWS


def _digest(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_files(tmp_path):
    a = simulate.write_case(simulate.make_case("version_skew", seed=11, rows=5_000),
                            tmp_path / "a")
    b = simulate.write_case(simulate.make_case("version_skew", seed=11, rows=5_000),
                            tmp_path / "b")
    assert _digest(a) == _digest(b)


def test_same_seed_same_tables():
    one = simulate.make_case("memory_leak", seed=4, rows=3_000).tables()
    two = simulate.make_case("memory_leak", seed=4, rows=3_000).tables()
    for name in one.names:
        pd.testing.assert_frame_equal(one[name], two[name])


def test_different_seeds_differ():
    a = simulate.make_case("unit_change", seed=1, rows=2_000)
    b = simulate.make_case("unit_change", seed=2, rows=2_000)
    assert a.onset != b.onset
    ra, rb = next(a.request_chunks()), next(b.request_chunks())
    assert not ra["latency_ms"].equals(rb["latency_ms"])
    assert a.truth() != b.truth()


def test_chunks_are_independent_of_materialisation():
    case = simulate.make_case("none", seed=3, rows=CHUNK_ROWS + 1_000)
    chunks = list(case.request_chunks())
    assert [len(c) for c in chunks] == [CHUNK_ROWS, 1_000]
    assert chunks[0]["ts"].max() <= chunks[1]["ts"].min()
    assert pd.concat(chunks, ignore_index=True)["request_id"].is_unique
    with pytest.raises(InvalidParameterError, match="max_rows"):
        case.tables(max_rows=CHUNK_ROWS)


def test_large_case_is_planned_without_rows():
    case = simulate.make_case("accelerator_fault", seed=0, rows=100_000_000)
    assert case.rows == 100_000_000 and case.chunk_count == 400
    first = next(case.request_chunks())
    assert len(first) == CHUNK_ROWS


@pytest.mark.parametrize("kwargs", [
    {"failure_mode": "nope"},
    {"failure_mode": "none", "rows": 10},
    {"failure_mode": "none", "seed": -1},
    {"failure_mode": "none", "extra_features": 200},
    {"failure_mode": "none", "preset": "gpu-oom-16gb"},
    {"failure_mode": None},
    {"failure_mode": "none", "preset": "no-such-preset"},
])
def test_bad_arguments(kwargs):
    mode = kwargs.pop("failure_mode")
    with pytest.raises(InvalidParameterError):
        simulate.make_case(mode, **kwargs)


def test_write_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x.txt").write_text("keep me")
    with pytest.raises(InvalidParameterError, match="not an empty folder"):
        simulate.write_case(simulate.make_case("none", rows=1_000), tmp_path)
