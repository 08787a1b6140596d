"""Events as a reader needs them: bursts of one kind merged, the ones that matter first.

A memory-exhaustion incident logs hundreds of ``oom_kill`` events in a few minutes; a report
that draws or lists each of them hides the two deploys that matter. :func:`bursts` merges runs
of events of the same kind and artifact (each within ``gap`` of the previous one) into one row
with a count; :func:`select_bursts` keeps those near the onset and the largest, so a table can
show them and count the rest.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

__all__ = ["BURST_COLUMNS", "bursts", "select_bursts"]

BURST_COLUMNS = ["first", "last", "kind", "artifact", "version", "count", "hosts", "host",
                 "detail"]


def bursts(events: pd.DataFrame, gap: timedelta | pd.Timedelta) -> pd.DataFrame:
    """Merge runs of events of one kind and artifact into bursts.

    Parameters
    ----------
    events
        Events with ``ts``, ``kind``, ``artifact`` and optionally ``version``, ``host``,
        ``detail`` (the case's ``events`` table).
    gap
        Two events of the same kind and artifact at most ``gap`` apart belong to one burst.
        Events with a version (deploys, rollbacks) are merged only with events of the same
        version.

    Returns
    -------
    pandas.DataFrame
        One row per burst, in time order: ``first``, ``last`` (times of its first and last
        event), ``kind``, ``artifact``, ``version`` (when all its events share one), ``count``,
        ``hosts`` (distinct hosts), ``host`` (the host when there is one), ``detail`` (of the
        first event).

    Examples
    --------
    >>> ts = pd.to_datetime(["2026-01-01 00:00", "2026-01-01 00:01", "2026-01-01 05:00"],
    ...                     utc=True)
    >>> ev = pd.DataFrame({"ts": ts, "kind": "oom_kill", "artifact": "infra",
    ...                    "host": ["a", "b", "a"]})
    >>> bursts(ev, pd.Timedelta("10min"))[["kind", "count", "hosts"]].to_dict("records")
    [{'kind': 'oom_kill', 'count': 2, 'hosts': 2}, {'kind': 'oom_kill', 'count': 1, 'hosts': 1}]
    """
    if events is None or events.empty:
        return pd.DataFrame(columns=BURST_COLUMNS)
    frame = events.copy()
    for column in ("version", "host", "detail", "artifact"):
        if column not in frame:
            frame[column] = None
    frame["_artifact"] = frame["artifact"].astype(object).where(frame["artifact"].notna(), "")
    frame["_version"] = frame["version"].astype(object).where(frame["version"].notna(), "")
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    keys = ["kind", "_artifact", "_version"]
    new_burst = frame.groupby(keys, sort=False)["ts"].diff() > pd.Timedelta(gap)
    first_of_key = ~frame.duplicated(keys)
    frame["_burst"] = (new_burst | first_of_key).groupby(
        [frame[k] for k in keys], sort=False).cumsum()
    grouped = frame.groupby([*keys, "_burst"], sort=False)
    out = grouped.agg(first=("ts", "min"), last=("ts", "max"), count=("ts", "size"),
                      hosts=("host", "nunique"), host=("host", "first"),
                      detail=("detail", "first")).reset_index()
    out["artifact"] = out["_artifact"].where(out["_artifact"] != "", None)
    out["version"] = out["_version"].where(out["_version"] != "", None)
    out["host"] = [h if n == 1 else None for h, n in zip(out["host"], out["hosts"],
                                                          strict=True)]
    out["count"] = out["count"].astype(int)
    out["hosts"] = out["hosts"].astype(int)
    return out.sort_values("first", kind="stable").reset_index(drop=True)[BURST_COLUMNS]


def select_bursts(frame: pd.DataFrame, onset: datetime, *, near: timedelta | pd.Timedelta,
                  largest: int = 5, limit: int = 25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The bursts a reader needs, and the rest.

    Kept: every burst of a change (deploy, rollback, config change, scale, cache flush), the
    bursts within ``near`` of ``onset``, and the ``largest`` bursts by count; at most
    ``limit`` rows, nearest to the onset first when there are more.

    Returns
    -------
    (kept, rest)
        Both in time order.
    """
    if frame.empty:
        return frame, frame
    onset = pd.Timestamp(onset)
    distance = pd.concat([(frame["first"] - onset).abs(), (frame["last"] - onset).abs()],
                         axis=1).min(axis=1)
    inside = (frame["first"] <= onset) & (frame["last"] >= onset)
    distance = distance.where(~inside, pd.Timedelta(0))
    change = frame["kind"].isin(["deploy", "rollback", "config_change", "scale", "cache_flush"])
    keep = change | (distance <= pd.Timedelta(near))
    keep |= frame.index.isin(frame["count"].nlargest(largest).index)
    chosen = frame[keep]
    if len(chosen) > limit:
        chosen = chosen.loc[distance[chosen.index].sort_values(kind="stable").index[:limit]]
    kept = frame.loc[sorted(chosen.index)]
    rest = frame.drop(index=kept.index)
    return kept, rest
