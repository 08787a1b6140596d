"""In-memory frames go through the same checks as files."""

from __future__ import annotations

import pandas as pd

import toolkit as tk


def test_a_mixed_type_pandas_column_rejects_its_stray_rows_instead_of_raising():
    """Arrow refuses [1, "x", 2.5] outright (ArrowInvalid); the loader rejects only row 'x'."""
    con = tk.connect()
    n = 200
    frame = pd.DataFrame({
        "request_id": [str(i) for i in range(n)],
        "ts": pd.to_datetime(["2026-01-01"] * n, utc=True),
        "latency_ms": [1.0] * (n - 1) + ["slow"],
        "amount": [1] * (n - 2) + ["x", 2.5],
    })
    report = tk.load(con, frame, table="requests")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (200, 198, 2)
    rejects = con.sql("SELECT row_number, column_name FROM rejects ORDER BY 1").fetchall()
    assert rejects == [(199, "amount"), (200, "latency_ms")]
    # Every loaded value equals the source value: 198 ones.
    assert con.sql("SELECT sum(amount), count(amount) FROM requests").fetchall() == [(198.0, 198)]
    assert con.sql("SELECT kind FROM features WHERE name = 'amount'").fetchall() == [("numeric",)]
