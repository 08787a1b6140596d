"""numpy arrays -> Arrow arrays with the canonical types (strings, UTC timestamps, nulls).

Examples
--------
>>> import numpy as np
>>> strings(np.array([0, 1, -1]), ["a", "b"]).to_pylist()
['a', 'b', None]
>>> ids("r-", np.array([7])).to_pylist()
['r-0000000007']
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["strings", "floats", "ints", "timestamps", "ids", "TS_TYPE"]

TS_TYPE = pa.timestamp("us", tz="UTC")


def strings(codes: np.ndarray, vocabulary: list[str] | tuple[str, ...]) -> pa.Array:
    """Codes into ``vocabulary`` (negative = null) as a plain string array."""
    codes = np.asarray(codes, dtype=np.int32)
    indices = pa.array(codes, mask=codes < 0, type=pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(vocabulary), pa.string())) \
        .dictionary_decode()


def floats(x: np.ndarray) -> pa.Array:
    """Doubles with NaN as null."""
    x = np.asarray(x, dtype=np.float64)
    return pa.array(x, mask=np.isnan(x), type=pa.float64())


def ints(x: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(x, dtype=np.int32), mask=mask, type=pa.int32())


def timestamps(start_us: int, seconds: np.ndarray) -> pa.Array:
    """``start`` (epoch microseconds) plus ``seconds``, as UTC timestamps (microseconds)."""
    us = start_us + np.round(np.asarray(seconds) * 1e6).astype(np.int64)
    return pa.array(us, type=pa.int64()).cast(TS_TYPE)


def ids(prefix: str, k: np.ndarray) -> pa.Array:
    """``prefix`` + ``k`` zero-padded to 10 digits."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(k, dtype=np.int64)), pa.string()),
                          width=10, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")
