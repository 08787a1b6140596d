"""Reference vs current distribution of the drifted features, as an Evidently user expects.

The drift diagnostic reports one number per feature (PSI, KS, ...); a reader wants to see how
the distribution moved. For the most drifted features this module counts values per bin in
the case's engine (numeric: the reference's deciles, so each bin holds a tenth of the reference;
categorical: the most frequent categories then ``other``; missing values in a bin of their
own) and draws reference and current shares side by side. The reference is the ``reference``
table when the drift was measured against it, else the baseline window of ``requests``.
The SQL is written for DuckDB and runs through ``case.con``; on Spark it is transpiled (the
list ``quantile_cont`` becomes the exact ``percentile``), so both engines draw the same bins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from toolkit.plotting import WINDOW_COLORS, plain_number, set_theme
from toolkit.store.schema import quote_ident

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    from matplotlib.figure import Figure

    from toolkit.diagnose._case import CaseView

__all__ = ["feature_distributions", "distributions_figure", "reliability_with_counts"]

#: Categories shown per categorical feature (the rest are ``other``).
TOP_CATEGORIES = 8


def feature_distributions(con: duckdb.DuckDBPyConnection, case: CaseView, drift: Any, *,
                          top: int = 4) -> pd.DataFrame:
    """Counts per bin and window of the ``top`` most drifted features.

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``kind``, ``order``, ``bin`` (label), ``window`` (``reference`` or
        ``current``), ``count``, ``share`` (of the window's rows).
    """
    columns = ["feature", "kind", "order", "bin", "window", "count", "share"]
    if drift is None or drift.table.empty or not drift.drifted:
        return pd.DataFrame(columns=columns)
    ranked = drift.table[drift.table["feature"].isin(drift.drifted)].sort_values(
        "psi", ascending=False)
    frames = []
    for row in ranked.head(top).itertuples():
        feature = str(row.feature)
        if feature not in case.columns.get("requests", {}):
            continue
        sides = _sides(case, drift, feature)
        if row.kind == "numeric":
            frames.append(_numeric(con, feature, sides))
        else:
            frames.append(_categorical(con, feature, sides))
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    totals = out.groupby(["feature", "window"])["count"].transform("sum")
    out["share"] = out["count"] / totals.where(totals > 0)
    return out[columns]


def _sides(case: CaseView, drift: Any, feature: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """FROM ... WHERE clauses (with parameters) of the reference and current rows."""
    incident = ("requests WHERE ts >= $start AND ts < $end",
                {"start": drift.incident.start, "end": drift.incident.end})
    if getattr(drift, "against", "baseline") == "reference" and case.has("reference", feature):
        return {"reference": ("reference", {}), "current": incident}
    return {"reference": ("requests WHERE ts >= $start AND ts < $end",
                          {"start": drift.baseline.start, "end": drift.baseline.end}),
            "current": incident}


def _numeric(con: duckdb.DuckDBPyConnection, feature: str,
             sides: dict[str, tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    column = quote_ident(feature)
    value = f"TRY_CAST({column} AS DOUBLE)"
    source, params = sides["reference"]
    quantiles = con.execute(
        f"SELECT quantile_cont({value}, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) "
        f"FROM {source}", params).fetchall()[0][0]
    edges = sorted(set(float(q) for q in quantiles)) if quantiles else []
    index = " + ".join(f"CAST({value} > $e{k} AS INTEGER)" for k in range(len(edges))) or "0"
    rows = []
    for window, (source, params) in sides.items():
        bound = params | {f"e{k}": e for k, e in enumerate(edges)}
        counts = con.execute(
            f"SELECT CASE WHEN {value} IS NULL THEN -1 ELSE {index} END AS k, count(*) AS n "
            f"FROM {source} GROUP BY k", bound).fetchall()
        rows.extend((window, int(k), int(n)) for k, n in counts)
    labels = _edge_labels(edges)
    frame = pd.DataFrame(rows, columns=["window", "order", "count"])
    full = pd.MultiIndex.from_product([list(sides), [-1, *range(len(labels))]],
                                      names=["window", "order"])
    frame = frame.set_index(["window", "order"]).reindex(full, fill_value=0).reset_index()
    if not frame.loc[frame["order"] == -1, "count"].any():
        frame = frame[frame["order"] != -1]
    frame["bin"] = [labels[k] if k >= 0 else "missing" for k in frame["order"]]
    frame.loc[frame["order"] == -1, "order"] = len(labels)
    return frame.assign(feature=feature, kind="numeric")


def _edge_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    shown = [plain_number(float(f"{e:.3g}")) for e in edges]
    return ([f"<= {shown[0]}"] + [f"{shown[k - 1]}-{shown[k]}" for k in range(1, len(shown))]
            + [f"> {shown[-1]}"])


def _categorical(con: duckdb.DuckDBPyConnection, feature: str,
                 sides: dict[str, tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    column = quote_ident(feature)
    rows = []
    for window, (source, params) in sides.items():
        counts = con.execute(
            f"SELECT CAST({column} AS VARCHAR) AS v, count(*) AS n FROM {source} GROUP BY v",
            params).fetchall()
        rows.extend((window, v, int(n)) for v, n in counts)
    frame = pd.DataFrame(rows, columns=["window", "bin", "count"])
    frame["bin"] = frame["bin"].astype(object).where(frame["bin"].notna(), "missing")
    totals = frame.groupby("bin")["count"].sum().sort_values(ascending=False, kind="stable")
    keep = [b for b in totals.index if b != "missing"][:TOP_CATEGORIES]
    frame["bin"] = [b if b in keep or b == "missing" else "other" for b in frame["bin"]]
    frame = frame.groupby(["window", "bin"], as_index=False)["count"].sum()
    order = {b: k for k, b in enumerate([*keep, "other", "missing"])}
    frame["order"] = frame["bin"].map(order)
    full = pd.MultiIndex.from_product([list(sides), sorted(set(frame["bin"]), key=order.get)],
                                      names=["window", "bin"])
    frame = frame.set_index(["window", "bin"])["count"].reindex(full, fill_value=0)
    frame = frame.reset_index()
    frame["order"] = frame["bin"].map(order)
    return frame.assign(feature=feature, kind="categorical")


def distributions_figure(frame: pd.DataFrame) -> Figure | None:
    """One panel per feature: reference and current shares per bin, side by side."""
    if frame.empty:
        return None
    set_theme()
    import matplotlib.pyplot as plt

    features = list(dict.fromkeys(frame["feature"]))
    cols = min(2, len(features))
    rows = int(np.ceil(len(features) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(features):]:
        ax.set_axis_off()
    colors = {"reference": WINDOW_COLORS["baseline"], "current": WINDOW_COLORS["incident"]}
    for ax, feature in zip(axes.flat, features, strict=False):
        part = frame[frame["feature"] == feature].sort_values("order")
        labels = list(dict.fromkeys(part["bin"]))
        x = np.arange(len(labels))
        for offset, window in ((-0.2, "reference"), (0.2, "current")):
            shares = part[part["window"] == window].set_index("bin")["share"].reindex(labels)
            ax.bar(x + offset, shares.fillna(0).to_numpy(), width=0.4, color=colors[window],
                   label=window, gid=f"{feature}:{window}")
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(feature, fontsize=10)
        ax.set_ylabel("share of rows", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("Drifted features: reference vs current distribution", fontsize=11)
    fig.tight_layout()
    return fig


def reliability_with_counts(calibration: Any) -> Figure:
    """The calibration diagnostic's reliability diagram, with the labelled requests per bin
    and window under it (a point on few labels is noise)."""
    set_theme()
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6.6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.1]})
    calibration.plot(ax=top)
    bins = calibration.reliability_bins
    width = float((bins["hi"] - bins["lo"]).median()) if len(bins) else 0.05
    for offset, window in ((-0.22, "baseline"), (0.22, "incident")):
        part = bins[(bins["window"] == window) & (bins["n"] > 0)]
        centers = (part["lo"] + part["hi"]) / 2
        bottom.bar(centers + offset * width, part["n"], width=0.42 * width,
                   color=WINDOW_COLORS[window], label=window, gid=f"counts:{window}")
    bottom.set_ylabel("labelled\nrequests", fontsize=8)
    bottom.set_xlabel("confidence bin")
    top.set_xlabel("")
    bottom.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
