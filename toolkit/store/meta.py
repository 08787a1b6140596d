"""Facts about a case that no log carries: serving mode and SLO targets (``case_meta``).

The diagnostics and reports read these keys when they are set, and otherwise infer a value or
use a stated default:

==================  ======================================================  ================
key                 meaning                                                 read by
==================  ======================================================  ================
``serving_mode``    ``real-time`` or ``batch``: how remediation reads and   traffic, batch
                    whether batch runs are compared run over run            runs, classify
``latency_slo_ms``  end-to-end latency target (p99), milliseconds           latency, weekly
``ttft_slo_ms``     time-to-first-token target, milliseconds                token latency
``tpot_slo_ms``     time-per-output-token target, milliseconds              token latency
``error_rate_slo``  highest acceptable error + timeout share (0..1)         weekly
``accuracy_slo``    lowest acceptable accuracy (0..1)                       weekly
``ece_slo``         highest acceptable expected calibration error (0..1)    weekly
==================  ======================================================  ================

A value is stored as JSON (numbers stay numbers). Keys the toolkit writes itself
(``score_semantics``, from a mapping file) are not set here.

Examples
--------
>>> import toolkit as tk
>>> con = tk.connect()
>>> set_meta(con, "serving_mode", "batch")
'batch'
>>> set_meta(con, "latency_slo_ms", "250")
250.0
>>> get_meta(con)
{'latency_slo_ms': 250.0, 'serving_mode': 'batch'}
"""

from __future__ import annotations

import json
import math
from typing import Any

import duckdb

from toolkit.errors import InvalidParameterError

__all__ = ["META_KEYS", "get_meta", "set_meta", "unset_meta"]

_POSITIVE_MS = "a positive number of milliseconds"
_SHARE = "a share between 0 and 1"
#: Keys a user may set, with what their value must be.
META_KEYS: dict[str, str] = {
    "serving_mode": "real-time or batch",
    "latency_slo_ms": _POSITIVE_MS,
    "ttft_slo_ms": _POSITIVE_MS,
    "tpot_slo_ms": _POSITIVE_MS,
    "error_rate_slo": _SHARE,
    "accuracy_slo": _SHARE,
    "ece_slo": _SHARE,
}


def _parse(key: str, value: Any) -> Any:
    if key not in META_KEYS:
        raise InvalidParameterError(
            f"Unknown case fact {key!r}; choose one of: {', '.join(META_KEYS)}.")
    if key == "serving_mode":
        text = str(value).strip().lower().replace("realtime", "real-time")
        if text not in ("real-time", "batch"):
            raise InvalidParameterError(f"serving_mode must be real-time or batch, not {value!r}.")
        return text
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    valid = number > 0 if META_KEYS[key] == _POSITIVE_MS else 0 <= number <= 1
    if not math.isfinite(number) or not valid:
        raise InvalidParameterError(f"{key} must be {META_KEYS[key]}, not {value!r}.")
    return number


def set_meta(con: duckdb.DuckDBPyConnection, key: str, value: Any) -> Any:
    """Set one case fact (validated: see :data:`META_KEYS`); returns the value stored.

    Raises
    ------
    InvalidParameterError
        An unknown key, or a value that is not what the key needs.
    """
    parsed = _parse(key, value)
    con.execute("INSERT OR REPLACE INTO case_meta VALUES (?, ?::JSON)", [key, json.dumps(parsed)])
    return parsed


def unset_meta(con: duckdb.DuckDBPyConnection, key: str) -> bool:
    """Remove one case fact (back to inference and defaults); whether it was set."""
    if key not in META_KEYS:
        raise InvalidParameterError(
            f"Unknown case fact {key!r}; choose one of: {', '.join(META_KEYS)}.")
    found = con.execute("SELECT count(*) FROM case_meta WHERE key = ?", [key]).fetchall()[0][0]
    con.execute("DELETE FROM case_meta WHERE key = ?", [key])
    return bool(found)


def get_meta(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Every fact set on the case, by key (values decoded from JSON)."""
    rows = con.execute("SELECT key, CAST(value AS VARCHAR) FROM case_meta ORDER BY key")
    return {key: json.loads(text) for key, text in rows.fetchall()}
