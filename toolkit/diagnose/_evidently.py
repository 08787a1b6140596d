"""The one module that imports Evidently: its DataDriftPreset on a bounded sample.

Used to cross-check our drift verdicts (tests, ``bench/diagnose.py``) and by users who want the
numbers Evidently would print. Evidently's types never leave this module: it returns a plain
pandas frame. Evidently computes in memory, so the case is sampled (at most ``sample_rows``
rows per window).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from toolkit._validation import check_windows
from toolkit.diagnose._case import CaseView, case_view
from toolkit.store.schema import quote_ident
from toolkit.types import Window

__all__ = ["evidently_drift", "evidently_drift_on_case"]


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: list[str],
    categorical: list[str],
    method: str | None = None,
) -> pd.DataFrame:
    """Run Evidently's ``DataDriftPreset`` and return one row per column.

    ``method`` forces one of Evidently's drift methods on every column (e.g. ``"psi"``, whose
    value the toolkit's ``recipe="evidently"`` reports as ``psi_evidently``); by default
    Evidently picks its test per column.

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``method`` (Evidently's name), ``statistic``, ``threshold``, ``drifted``.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    columns = numerical + categorical
    preset = DataDriftPreset() if method is None else DataDriftPreset(method=method)
    snapshot = Report([preset]).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    rows = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if "ValueDrift" not in str(config.get("type", "")):
            continue
        method = str(config.get("method", ""))
        threshold = float(config.get("threshold", 0.1))
        value = float(metric["value"])
        is_pvalue = "p_value" in method
        drifted = value <= threshold if method.startswith("K-S") else (
            value < threshold if is_pvalue else value >= threshold)
        rows.append({"feature": config["column"], "method": method, "statistic": value,
                     "threshold": threshold, "drifted": bool(drifted)})
    return pd.DataFrame(rows)


def evidently_drift_on_case(
    con: duckdb.DuckDBPyConnection,
    baseline: Window | str,
    incident: Window | str,
    /,
    *,
    features: list[str] | None = None,
    sample_rows: int = 100_000,
    seed: int = 0,
    case: CaseView | None = None,
) -> pd.DataFrame:
    """Evidently's drift verdicts for the case's features on a seeded sample of each window."""
    baseline, incident = check_windows(baseline, incident)
    case = case or case_view(con)
    catalog = case.features
    if features is not None:
        catalog = catalog[catalog["name"].isin(features)]
    numerical = catalog.loc[catalog["kind"] == "numeric", "name"].tolist()
    categorical = catalog.loc[catalog["kind"] == "categorical", "name"].tolist()
    frames = [_sample(con, w, numerical + categorical, sample_rows, seed)
              for w in (baseline, incident)]
    return evidently_drift(frames[0], frames[1], numerical=numerical, categorical=categorical)


def _sample(con: duckdb.DuckDBPyConnection, window: Window, columns: list[str], rows: int,
            seed: int) -> pd.DataFrame:
    select = ", ".join(quote_ident(c) for c in columns)
    return con.execute(
        f"SELECT * FROM (SELECT {select} FROM requests WHERE ts >= $start AND ts < $end) "
        f"USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE ({int(seed)})",
        {"start": window.start, "end": window.end},
    ).df()
