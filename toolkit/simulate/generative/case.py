"""``make_case`` for a generative (LLM) endpoint: the same :class:`~toolkit.simulate.Case` the
binary simulator returns, with generative tables.

Examples
--------
>>> from toolkit.simulate.generative import make_case
>>> case = make_case("kv_cache_exhaustion", seed=1, rows=2_000)
>>> case.pathway, case.truth()["task"]
('infrastructure', 'generative')
>>> first = next(case.request_chunks())
>>> {"input_tokens", "ttft_ms", "cached_tokens", "finish_reason"} <= set(first.columns)
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.errors import InvalidParameterError
from toolkit.simulate import fleet as fleet_mod
from toolkit.simulate.case import Case, CaseTables, _iso, _jsonable
from toolkit.simulate.fleet import Restart
from toolkit.simulate.generative import modes as G
from toolkit.simulate.generative import rows as R
from toolkit.simulate.generative import tables as T
from toolkit.simulate.generative.plan import (
    DAY,
    HOUR,
    KV_FULL,
    MINUTE,
    STEP_S,
    Builder,
    GenPlan,
    blend,
    draw_platform,
    engine_state,
)
from toolkit.simulate.ingest import ingest_written
from toolkit.types import Window

__all__ = ["GenerativeCase", "make_case", "write_case", "ingest_case", "MODES"]

MODES = G.MODES
MIN_ROWS = 1_000
MAX_ROWS = 50_000_000
SPAN_DAYS = 7.0
METRICS_BEFORE_ONSET = 3 * DAY
_DEFAULT_START = datetime(2026, 2, 2, tzinfo=UTC)
#: Salt of the generative cases' random streams (the binary ones stay as they are).
_SALT = 23


@dataclass(frozen=True)
class GenerativeCase(Case):
    """A simulated generative case: the truth and the schedule; tables on demand.

    Same attributes as :class:`~toolkit.simulate.Case`; ``plan`` is a
    :class:`~toolkit.simulate.generative.plan.GenPlan`. The tables: ``requests`` with the
    section 3a columns, ``labels`` (feedback ``good`` / ``bad``), ``metrics`` (engine
    metrics), ``events``, ``lineage`` (with ``template_version``) and ``endpoints``.
    """

    @property
    def table_names(self) -> tuple[str, ...]:
        return ("requests", "labels", "features", "metrics", "events", "lineage", "endpoints")

    @property
    def chunk_count(self) -> int:
        return max(1, -(-self.rows // R.CHUNK_ROWS))

    def truth(self) -> dict[str, Any]:
        plan: GenPlan = self.plan
        p = plan.platform
        injected = {k: v for k, v in self.injected.items() if not k.startswith("_")}
        return {
            "task": "generative",
            "pathway": self.pathway,
            "failure_mode": self.failure_mode,
            "onset": _iso(self.onset) if self.onset else None,
            "incident": self.incident.as_list(),
            "baseline": self.baseline.as_list(),
            "notes": self.notes,
            "seed": self.seed,
            "rows": self.rows,
            "preset": None,
            "confounders": list(self.confounders),
            "injected": injected,
            "platform": {
                "hosts": list(p.pods), "model_name": p.model_name, "endpoint": p.service,
                "tables": list(self.table_names), "metric_step_s": int(STEP_S),
                "metrics_from": _iso(self.start + timedelta(seconds=plan.metrics_from)),
                "label_share": round(p.label_share, 4),
                "kv_capacity_tokens": int(plan.state.capacity_tokens[0, 0]),
            },
        }

    def arrow_chunks(self) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        for c in range(self.chunk_count):
            yield R.chunk(self.plan, c)

    def metric_tables(self) -> Iterator[pa.Table]:
        """Metrics as Arrow tables, one per replica, then ``replicas``."""
        return T.metric_tables(self.plan)

    def metric_chunks(self) -> Iterator[pd.DataFrame]:
        for table in self.metric_tables():
            yield table.to_pandas()

    def events(self) -> pd.DataFrame:
        return T.events_frame(self.plan)

    def features(self) -> pd.DataFrame:
        return T.features_frame(self.plan)

    def lineage(self) -> pd.DataFrame:
        return T.lineage_frame(self.plan)

    def reference(self) -> None:
        return None

    def endpoints(self) -> pd.DataFrame:
        return T.endpoints_frame(self.plan)

    def tables(self, *, max_rows: int = 2_000_000) -> CaseTables:
        if self.rows > max_rows:
            raise InvalidParameterError(
                f"This case has {self.rows:,} requests, more than max_rows={max_rows:,}. "
                "Iterate over request_chunks() or write it with write_case() instead.")
        parts = list(self.arrow_chunks())
        return CaseTables(
            pa.concat_tables([r for r, _ in parts]).to_pandas(),
            pa.concat_tables([lab for _, lab in parts]).to_pandas(), None, self.features(),
            pa.concat_tables(list(self.metric_tables())).to_pandas(), self.events(),
            self.lineage())


def make_case(mode: str, /, *, seed: int = 0, rows: int = 100_000,
              confounders: bool = True) -> GenerativeCase:
    """Plan a simulated incident of a generative endpoint (or a healthy period, ``"none"``).

    Parameters
    ----------
    mode
        One of :data:`MODES`.
    seed
        Everything random follows from it: the same arguments give identical tables.
    rows
        Number of requests in the log (1,000 to 50,000,000).
    confounders
        Add a benign release near the onset, a busy day away from it and quieter weekends.

    Raises
    ------
    InvalidParameterError
        Unknown mode, or out-of-range numbers.
    """
    if mode not in MODES:
        raise InvalidParameterError(f"Unknown generative failure mode {mode!r}. Modes: "
                                    f"{', '.join(MODES)}.")
    for name, value, lo, hi in (("seed", seed, 0, 2**63 - 1), ("rows", rows, MIN_ROWS,
                                                               MAX_ROWS)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                not lo <= value <= hi:
            raise InvalidParameterError(
                f"{name} must be an integer from {lo:,} to {hi:,}. Got {value!r}.")
    key = (int(seed), list(MODES).index(mode), _SALT)
    rng = np.random.default_rng([*key, 0])
    platform = draw_platform(rng)
    span = SPAN_DAYS * DAY
    start = _DEFAULT_START + timedelta(days=7 * int(rng.integers(0, 4)))
    onset = float(round(float(rng.uniform(0.55, 0.78)) * span / MINUTE) * MINUTE)
    b = Builder(rng=rng, mode=mode, span_s=span, start=start, onset=onset, platform=platform,
                severity=float(rng.random()))
    G.drains(b)
    if confounders:
        G.confounders(b)
    G.PLANNERS[mode](b)
    traffic = b.traffic()
    crashes = _crashes(b, traffic, np.random.default_rng([*key, 8]))
    fleet, fleet_events = fleet_mod.build(
        np.random.default_rng([*key, 4]), pods=platform.pods, span_s=span, step=STEP_S,
        traffic=traffic, concurrency=8.0, memory_base=0.4, windows=tuple(b.windows),
        restarts=tuple(b.restarts))
    for t, kind, host, detail in fleet_events:
        b.event(t, kind, "infra", None, host, **detail)
    hit_share = _hit_share(b, fleet)
    unbounded = engine_state(platform, b.knobs, fleet, traffic, None, hit_share)
    alive = fleet.alive
    # sized for the heaviest minute of a typical replica before the onset (a slow replica's
    # own load is its problem), with 15-35% headroom, and never full for a typical replica
    # unless the failure is the KV cache itself
    typical_demand = np.nanmedian(np.where(alive, unbounded.demand, np.nan), axis=1)
    before = (np.arange(alive.shape[0]) + 1) * STEP_S <= onset
    capacity = max(float(np.nanmax(typical_demand[before])) / rng.uniform(0.65, 0.85),
                   float(np.nanmax(typical_demand)) / 0.88)
    if b.knobs.kv_factor is not None:  # the config change sizes the cache below the load
        ramp, _ = b.knobs.kv_factor
        mid = (np.arange(alive.shape[0]) + 0.5) * STEP_S
        during = ramp.active(mid)[:, None] & alive
        typical = float(np.median(unbounded.demand[during])) if during.any() else capacity
        factor = typical / (b.injected["kv_overload"] * KV_FULL) / capacity
        b.knobs.kv_factor = (ramp, factor)
        b.injected["kv_capacity_factor"] = round(factor, 4)
    state = engine_state(platform, b.knobs, fleet, traffic, capacity, hit_share)
    incident_end = float(min(b.incident_end, span))
    baseline_end = max(np.floor((onset - 30 * MINUTE) / HOUR) * HOUR, DAY)
    if crashes:
        b.injected["oom_kills"] = sum(len(v) for v in crashes.values())
    b.injected["_crashes"] = {str(j): v for j, v in crashes.items()}
    b.injected["_hit_share"] = hit_share
    token = "".join(np.random.default_rng([*key, 7]).choice(list("0123456789abcdef"), 6))
    plan = GenPlan(
        seed=int(seed), key=key, mode=mode, rows=int(rows), start=start, span_s=span,
        onset=None if mode == "none" else onset, incident=(onset, max(incident_end,
                                                                      onset + HOUR)),
        baseline=(0.0, float(baseline_end)), platform=platform, knobs=b.knobs,
        traffic=traffic, fleet=fleet, state=state, events=tuple(b.events),
        versions=tuple(b.versions), lineage=tuple(b.lineage), clients=tuple(b.clients),
        injected=b.injected, confounders=tuple(b.confounders),
        metrics_from=float(max(0.0, np.floor((onset - METRICS_BEFORE_ONSET) / DAY) * DAY)),
        id_prefix=f"chatcmpl-{token}-")
    return _case(plan, mode)


def _hit_share(b: Builder, fleet) -> np.ndarray | None:
    """Fleet-wide prefix-hit probability relative to the baseline, per minute (a client
    release that defeats the prefix cache, as its users adopt it)."""
    releases = [r for r in b.clients if r[4] is not None]
    if not releases:
        return None
    p = b.platform
    mid = (np.arange(fleet.alive.shape[0]) + 0.5) * fleet.step
    share = np.ones(len(mid))
    total = sum(s for _, _, s in p.clients)
    for t0, family, _, tau, hit in releases:
        weight = next(s for f, _, s in p.clients if f == family) / total
        adopted = np.where(mid >= t0, 1 - np.exp(-(mid - t0) / tau), 0.0)
        share -= weight * adopted * (1 - hit / p.hit_probability)
    return share


def _crashes(b: Builder, traffic, rng: np.random.Generator) -> dict[int, list[float]]:
    """OOM crashes per base replica: prompts beyond the OOM size arrive as a Poisson stream
    after the onset; each kills the engine (at most one crash per 10 minutes per replica, the
    time it takes to come back and fill up again), which restarts after 40-120 s."""
    k, p = b.knobs, b.platform
    if not np.isfinite(k.oom_tokens):
        return {}
    from scipy.stats import norm

    from toolkit.simulate.generative.plan import LONG_SIGMA

    mid = (np.arange(int(b.span_s // STEP_S)) + 0.5) * STEP_S
    median = blend(k.long_median, mid, p.long_median)
    tail = norm.sf(np.log(k.oom_tokens / median) / LONG_SIGMA)
    rate = p.rate_per_pod * traffic.at(mid) * blend(k.long_share, mid, p.long_share) * tail
    out: dict[int, list[float]] = {}
    for j, pod in enumerate(p.pods):
        hits = rng.random(len(mid)) < 1 - np.exp(-rate * STEP_S)
        times, last = [], -np.inf
        for g in np.flatnonzero(hits & (mid >= b.onset)):
            t = float(mid[g] + rng.uniform(-STEP_S / 2, STEP_S / 2))
            if t - last < 600.0 or t >= b.incident_end:
                continue
            last = t
            times.append(t)
            downtime = float(rng.uniform(40, 120))
            b.restarts.append(Restart(t, pod, downtime))
            b.event(t, "oom_kill", "infra", None, pod, reason="OOMKilled",
                    container="vllm-engine", exit_code=137)
            b.event(t + downtime, "restart", "infra", None, pod, reason="OOMKilled",
                    restart_count=len(times))
        out[j] = times
    return out


def _case(plan: GenPlan, mode: str) -> GenerativeCase:
    def at(seconds: float) -> datetime:
        return plan.start + timedelta(seconds=round(float(seconds)))

    injected = json.loads(json.dumps({k: v for k, v in plan.injected.items()
                                      if not k.startswith("_")}, default=_jsonable))
    notes = " ".join((G.PLANNERS[mode].__doc__ or "").split())
    return GenerativeCase(
        failure_mode=mode, pathway=MODES[mode], seed=plan.seed, rows=plan.rows, preset=None,
        start=plan.start, end=at(plan.span_s),
        onset=at(plan.onset) if plan.onset is not None else None,
        incident=Window(at(plan.incident[0]), at(min(plan.incident[1], plan.span_s))),
        baseline=Window(at(plan.baseline[0]), at(plan.baseline[1])),
        confounders=plan.confounders, injected=injected, notes=notes, plan=plan)


def write_case(case: GenerativeCase, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``case`` as generic export files (the binary layout, plus ``endpoints.csv``).

    Uses :func:`toolkit.simulate.writer.write_tables` for requests, labels, features, events,
    lineage and ``truth.json``, and writes the engine metrics itself.

    Raises
    ------
    InvalidParameterError
        ``out_dir`` is a file, or a folder that is not empty.
    """
    from toolkit.simulate.writer import write_tables

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidParameterError(f"{out} exists and is not an empty folder.")
    out.mkdir(parents=True, exist_ok=True)
    write_tables(case, out, metrics=False, events=case.events())
    (out / "metrics").mkdir()
    pq.write_table(pa.concat_tables(list(case.metric_tables())),
                   out / "metrics" / "part-00000.parquet")
    case.endpoints().to_csv(out / "endpoints.csv", index=False)
    frame = case.lineage().copy()
    frame["created_at"] = frame["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.to_csv(out / "lineage.csv", index=False)
    return out


def ingest_case(case: GenerativeCase, folder: str | os.PathLike[str]):
    """Write ``case`` to ``folder/raw`` and load it into a fresh ``folder/case.duckdb``
    (as :func:`toolkit.simulate.ingest_case`)."""
    return ingest_written(lambda raw: write_case(case, raw), folder)
