"""Evaluate the classifier on a suite of simulated incidents (``forensics evaluate``).

For every failure mode (and ``none``) and seed, a case is simulated, written as files, ingested
through the real loader into a fresh case, and classified, with the true windows
(``given_window=True``) or with windows detected from the data. The report gives pathway top-1
accuracy, failure-mode accuracy, macro-F1 over pathways, the confusion matrix, the median onset
error, the abstention rate and the time per case, with bootstrap 90% confidence intervals over
cases (:func:`bootstrap_interval`), and scores the window detector on its own: onset error
(median, share within 30 minutes), the overlap (intersection over union) of the detected
incident window with the true one, and the share of incidents whose detected window holds the
true onset (``window_holds_onset``).

**Tuning and report seeds are kept apart.** Per world (``world="classic"`` or ``"varied"``,
see :mod:`toolkit.simulate.world`):

* classic world: seeds 1-15 (:data:`TUNING_SEEDS`) are the ones the rule table and window
  detection were tuned on; report on others (default :data:`REPORT_SEEDS`, 1001-1003);
* varied world: seeds 1-20 (:data:`VARIED_TUNING_SEEDS`) are for tuning rules and detectors;
  report seeds are 2001 and above (default :data:`VARIED_REPORT_SEEDS`, 2001-2003).

Per task (``task="binary"``, the default, or ``"multiclass"``, ``"regression"``,
``"generative"``: the model behind the simulated endpoint, DESIGN section 3a): the binary
task keeps the worlds' seeds above; the other tasks tune on seeds 1-15
(:data:`TASK_TUNING_SEEDS`) and report on 1001-1003 (:data:`TASK_REPORT_SEEDS`) in the classic
world, and their default modes are the ones their simulator offers
(:func:`toolkit.simulate.case.task_modes`). A multiclass or regression case is loaded with its
``endpoints`` catalog, so the diagnostics know the task and the interval's nominal coverage.

:func:`evaluate` refuses to report on a tuning seed unless it is told the run is a tuning run
(``tuning=True``), and the report says which kind of run it was.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.classify.api import NO_CHANGE_FOUND
from toolkit.errors import InvalidParameterError

__all__ = ["evaluate", "EvaluationReport", "TUNING_SEEDS", "REPORT_SEEDS",
           "VARIED_TUNING_SEEDS", "VARIED_REPORT_SEEDS", "bootstrap_interval", "macro_f1",
           "window_iou", "seeds_for", "check_suite", "TASK_TUNING_SEEDS", "TASK_REPORT_SEEDS", "TASKS"]

#: Classic world: seeds the rules and the window detector were tuned on.
TUNING_SEEDS = tuple(range(1, 16))
#: Classic world: default report seeds.
REPORT_SEEDS = (1001, 1002, 1003)
#: Varied world: seeds for tuning (never reported on).
VARIED_TUNING_SEEDS = tuple(range(1, 21))
#: Varied world: default report seeds (report on seeds >= 2001 only).
VARIED_REPORT_SEEDS = (2001, 2002, 2003)
#: Bootstrap replicates and level of the confidence intervals.
BOOTSTRAP_REPS = 2000
CI_LEVEL = 0.90
#: An onset counts as found when it is within this many minutes of the true one.
ONSET_TOLERANCE_MIN = 30.0
_WORLDS = ("classic", "varied")
#: Tasks a suite can simulate.
TASKS = ("binary", "multiclass", "regression", "generative")
#: Multiclass, regression and generative services: seeds for tuning (never reported on).
TASK_TUNING_SEEDS = tuple(range(1, 16))
#: Multiclass, regression and generative services: default report seeds.
TASK_REPORT_SEEDS = (1001, 1002, 1003)


def seeds_for(world: str, *, tuning: bool = False, task: str = "binary") -> tuple[int, ...]:
    """The tuning or (default) report seeds of ``world`` and ``task``.

    Examples
    --------
    >>> seeds_for("classic", task="regression"), seeds_for("varied", tuning=True)[-1]
    ((1001, 1002, 1003), 20)
    """
    if world not in _WORLDS:
        raise InvalidParameterError(f"Unknown world {world!r}; choose classic or varied.")
    if task not in TASKS:
        raise InvalidParameterError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if task != "binary":
        return TASK_TUNING_SEEDS if tuning else TASK_REPORT_SEEDS
    if world == "varied":
        return VARIED_TUNING_SEEDS if tuning else VARIED_REPORT_SEEDS
    return TUNING_SEEDS if tuning else REPORT_SEEDS


@dataclass(frozen=True)
class CaseOutcome:
    mode: str
    seed: int
    truth_pathway: str
    truth_mode: str
    truth_onset: str | None
    pathway: str
    failure_mode: str
    confidence: float
    onset: str | None
    onset_error_min: float
    seconds: float
    error: str | None = None
    truth_incident: tuple[str, str] | None = None
    incident: tuple[str, str] | None = None
    window_iou: float = float("nan")
    world: str = "classic"
    draws: dict[str, Any] = field(default_factory=dict)
    task: str = "binary"
    window_source: str = ""


@dataclass(frozen=True)
class EvaluationReport:
    """Outcomes per case and the summary metrics."""

    outcomes: tuple[CaseOutcome, ...]
    given_window: bool
    rows: int
    seeds: tuple[int, ...]
    summary: dict[str, float] = field(default_factory=dict)
    world: str = "classic"
    tuning: bool = False
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    task: str = "binary"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(o) for o in self.outcomes])

    def confusion(self) -> pd.DataFrame:
        """Truth pathway (rows) x predicted pathway (columns)."""
        frame = self.to_frame()
        return pd.crosstab(frame["truth_pathway"], frame["pathway"])

    def to_dict(self) -> dict[str, Any]:
        return {"given_window": self.given_window, "rows": self.rows, "seeds": list(self.seeds),
                "world": self.world, "task": self.task, "tuning_run": self.tuning,
                "summary": self.summary,
                "intervals": {k: list(v) for k, v in self.intervals.items()},
                "ci_level": CI_LEVEL,
                "misses": self.misses(),
                "cases": [asdict(o) for o in self.outcomes],
                "confusion": self.confusion().to_dict()}

    def misses(self) -> list[dict[str, Any]]:
        """Cases whose failure mode was wrong: truth, verdict, onset error, window overlap."""
        return [{"mode": o.mode, "seed": o.seed, "verdict": f"{o.pathway}/{o.failure_mode}",
                 "confidence": round(o.confidence, 3),
                 "onset_error_min": None if np.isnan(o.onset_error_min)
                 else round(o.onset_error_min, 1),
                 "window_iou": None if np.isnan(o.window_iou) else round(o.window_iou, 3),
                 "error": o.error}
                for o in self.outcomes if o.failure_mode != o.truth_mode]


def evaluate(
    *,
    seeds: Iterable[int] | None = None,
    rows: int = 30_000,
    given_window: bool = True,
    modes: Iterable[str] | None = None,
    jobs: int = 1,
    progress: Callable[[CaseOutcome], None] | None = None,
    world: str = "classic",
    tuning: bool = False,
    task: str = "binary",
) -> EvaluationReport:
    """Simulate, ingest, diagnose and classify a suite of incidents; score the verdicts.

    Parameters
    ----------
    seeds
        Case seeds; by default the world's report seeds (:func:`seeds_for`).
    rows
        Requests per case (in the varied world: requests served, of which the log keeps a
        1-in-2 to 1-in-50 sample).
    given_window
        Classify with the true incident and baseline windows instead of detected ones.
    modes
        Failure modes (default: all the task's modes and ``none``).
    jobs
        Cases evaluated in parallel.
    progress
        Called with each outcome as it is done.
    world
        ``classic`` or ``varied`` (see :func:`toolkit.simulate.make_case`).
    tuning
        This is a tuning run: tuning seeds are allowed and the report says so. Without it, a
        tuning seed of ``world`` (or of ``task``) is refused.
    task
        The model behind the simulated endpoint: ``binary`` (default), ``multiclass``,
        ``regression`` or ``generative`` (classic world only).

    Raises
    ------
    InvalidParameterError
        Unknown world or task, a mode the task does not simulate, the varied world with
        another task than binary, or a tuning seed in a report run.
    """
    modes = check_suite(world, task, modes)
    tuning_seeds = seeds_for(world, tuning=True, task=task)
    seeds = tuple(seeds) if seeds is not None else seeds_for(world, task=task)
    if not tuning:
        bad = sorted(set(seeds) & set(tuning_seeds))
        if bad:
            where = f"the {task} service" if task != "binary" else f"the {world} world"
            raise InvalidParameterError(
                f"Seeds {', '.join(map(str, bad))} are tuning seeds of {where} "
                f"({tuning_seeds[0]}-{tuning_seeds[-1]}); report on others, or mark the run "
                "as a tuning run.")
    specs = [(mode, seed, rows, given_window, world, task) for mode in modes for seed in seeds]
    outcomes = []
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for outcome in pool.map(_run_case, specs):
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
    else:
        for spec in specs:
            outcome = _run_case(spec)
            outcomes.append(outcome)
            if progress:
                progress(outcome)
    report = EvaluationReport(tuple(outcomes), given_window, rows, seeds, world=world,
                              tuning=tuning, task=task)
    summary, intervals = _summary(report)
    return EvaluationReport(report.outcomes, given_window, rows, seeds, summary, world, tuning,
                            intervals, task)


def check_suite(world: str, task: str, modes: Iterable[str] | None = None) -> list[str]:
    """The failure modes of a suite: ``modes``, checked against what the ``task``'s simulator
    offers, or all of them (and ``none``) by default.

    Raises
    ------
    InvalidParameterError
        Unknown world or task, a task other than binary in the varied world, or a mode the
        task's service does not simulate.

    Examples
    --------
    >>> check_suite("classic", "regression")[:2]
    ['covariate_shift', 'concept_drift']
    """
    from toolkit.simulate.case import task_modes

    seeds_for(world, task=task)  # checks both names
    if task != "binary" and world != "classic":
        raise InvalidParameterError(f"The {task} service is simulated in the classic world "
                                    "only; leave out the varied world.")
    offered = task_modes(task)
    chosen = list(modes) if modes is not None else list(offered)
    unknown = [m for m in chosen if m not in offered]
    if unknown:
        raise InvalidParameterError(
            f"The {task} service does not simulate {', '.join(unknown)}. Its modes: "
            f"{', '.join(offered)}.")
    return chosen


def _ingest(case: Any, folder: str):
    """Write and load ``case`` into ``folder``, with its ``endpoints`` catalog when it has
    one (multiclass and regression cases declare their task and interval coverage there)."""
    from toolkit.load import load
    from toolkit.simulate import ingest_case, write_case
    from toolkit.simulate.tasks import write_endpoints
    from toolkit.store import connect

    if not hasattr(case, "endpoints") or case.endpoints() is None:
        return ingest_case(case, folder)
    raw = Path(folder) / "raw"
    write_case(case, raw)
    write_endpoints(case, raw)
    con = connect(Path(folder) / "case.duckdb")
    load(con, raw)
    return con


def _run_case(spec: tuple[str, int, int, bool, str, str]) -> CaseOutcome:
    from toolkit.classify import classify_incident
    from toolkit.simulate import make_case

    mode, seed, rows, given_window, world, task = spec
    start = time.perf_counter()
    case = make_case(mode, seed=seed, rows=rows, world=world, task=task)
    truth = case.truth()
    true_window = tuple(truth["incident"]) if truth.get("onset") else None
    draws = {}
    if "world" in truth:
        w = truth["world"]
        draws = {"service": w["service"], "sample_every": w["sampling"]["sample_every"],
                 "logged_rows": w["sampling"]["logged_rows"], "labels": w["labels"]["present"],
                 "tables": sorted(k for k, v in w["tables"].items() if v),
                 "traffic": w["traffic"]["shape"], "strength": w["strength"],
                 "onset_position": w["onset_position"], "confounders": w["confounders"]}
    try:
        with tempfile.TemporaryDirectory(prefix="forensics-eval-") as folder:
            con = _ingest(case, folder)
            kwargs = {}
            if given_window:
                kwargs = {"incident": "/".join(truth["incident"]),
                          "baseline": "/".join(truth["baseline"])}
            result = classify_incident(con, **kwargs)
            con.close()
        verdict = result.to_dict()
        onset = verdict["onset"]
        error = _onset_error(truth.get("onset"), onset)
        found = tuple(verdict["incident"]) if verdict.get("incident") else None
        iou = window_iou(true_window, found) if true_window and found else float("nan")
        return CaseOutcome(mode, seed, truth["pathway"], truth["failure_mode"],
                           truth.get("onset"), result.pathway, result.failure_mode,
                           float(result.confidence), onset, error,
                           time.perf_counter() - start, None, true_window, found, iou, world,
                           draws, task, result.window_source)
    except Exception as exc:  # an evaluation run reports a crash as an outcome, not a stop
        return CaseOutcome(mode, seed, truth["pathway"], truth["failure_mode"], truth.get("onset"),
                           "error", "error", 0.0, None, float("nan"),
                           time.perf_counter() - start, f"{type(exc).__name__}: {exc}",
                           true_window, None, float("nan"), world, draws, task)


def _onset_error(truth: str | None, predicted: str | None) -> float:
    if not truth or not predicted:
        return float("nan")
    return abs((pd.Timestamp(predicted) - pd.Timestamp(truth)).total_seconds()) / 60


def window_iou(truth: tuple[str, str], found: tuple[str, str]) -> float:
    """Intersection over union of two half-open windows ``(start, end)`` (ISO times).

    Examples
    --------
    >>> window_iou(("2026-03-02T00:00:00Z", "2026-03-02T04:00:00Z"),
    ...            ("2026-03-02T02:00:00Z", "2026-03-02T06:00:00Z"))
    0.3333333333333333
    """
    a0, a1 = (pd.Timestamp(t) for t in truth)
    b0, b1 = (pd.Timestamp(t) for t in found)
    inter = max((min(a1, b1) - max(a0, b0)).total_seconds(), 0.0)
    union = (a1 - a0).total_seconds() + (b1 - b0).total_seconds() - inter
    return inter / union if union > 0 else float("nan")


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over the true classes present in ``truth`` (a prediction outside them, such as
    ``undetermined``, counts as a miss of its true class)."""
    f1s = []
    for label in sorted(set(truth.tolist())):
        tp = int(((predicted == label) & (truth == label)).sum())
        fp = int(((predicted == label) & (truth != label)).sum())
        fn = int(((predicted != label) & (truth == label)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    return float(np.mean(f1s))


def bootstrap_interval(
    n: int,
    statistic: Callable[[np.ndarray], float],
    *,
    reps: int = BOOTSTRAP_REPS,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``n`` cases.

    Parameters
    ----------
    n
        Number of cases.
    statistic
        Maps an array of case indices (a resample with replacement) to the figure.
    reps, level, seed
        Replicates, coverage (0.90: the 5th and 95th percentiles), random seed.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` without cases or when every replicate is undefined.
    """
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(reps, n))
    values = np.array([statistic(idx) for idx in draws], dtype=np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return (float(low), float(high))


def _summary(report: EvaluationReport) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    frame = report.to_frame()
    truth_path = frame["truth_pathway"].to_numpy(dtype=object)
    path = frame["pathway"].to_numpy(dtype=object)
    pathway_ok = (path == truth_path).astype(float)
    mode_ok = (frame["failure_mode"] == frame["truth_mode"]).to_numpy(dtype=float)
    incidents = frame[frame["truth_pathway"] != "none"]
    onset_err = incidents["onset_error_min"].to_numpy(dtype=float)
    # a missing onset is a miss of the 30-minute tolerance (it counts in the share's base)
    within = np.where(np.isnan(onset_err), 0.0, onset_err <= ONSET_TOLERANCE_MIN)
    iou = incidents["window_iou"].to_numpy(dtype=float)
    holds = _holds_onset(incidents)

    def median_or_nan(x: np.ndarray) -> float:
        x = x[~np.isnan(x)]
        return float(np.median(x)) if len(x) else float("nan")

    summary = {
        "cases": int(len(frame)),
        "pathway_accuracy": float(pathway_ok.mean()),
        "failure_mode_accuracy": float(mode_ok.mean()),
        "macro_f1": macro_f1(truth_path, path),
        "median_onset_error_min": median_or_nan(onset_err),
        "onset_within_30min": float(within.mean()) if len(within) else float("nan"),
        "onsets_missing": int(np.isnan(onset_err).sum()),
        "window_holds_onset": float(holds.mean()) if len(holds) else float("nan"),
        "median_window_iou": median_or_nan(iou),
        "mean_window_iou": float(np.nanmean(iou)) if (~np.isnan(iou)).any() else float("nan"),
        "abstention_rate": float((frame["pathway"] == "undetermined").mean()),
        "windows_not_found": int(_no_change_found(incidents).sum()),
        "healthy_windows_opened": int(_window_placed(
            frame.loc[frame["truth_pathway"] == "none"]).sum()),
        "errors": int((frame["pathway"] == "error").sum()),
        "seconds_per_case": float(frame["seconds"].mean()),
    }
    m = len(incidents)
    intervals = {
        "pathway_accuracy": bootstrap_interval(len(frame), lambda i: pathway_ok[i].mean()),
        "failure_mode_accuracy": bootstrap_interval(len(frame), lambda i: mode_ok[i].mean()),
        "macro_f1": bootstrap_interval(len(frame), lambda i: macro_f1(truth_path[i], path[i])),
        "median_onset_error_min": bootstrap_interval(m, lambda i: median_or_nan(onset_err[i])),
        "onset_within_30min": bootstrap_interval(m, lambda i: within[i].mean()),
        "mean_window_iou": bootstrap_interval(
            m, lambda i: float(np.nanmean(iou[i])) if (~np.isnan(iou[i])).any()
            else float("nan")),
        "window_holds_onset": bootstrap_interval(m, lambda i: holds[i].mean()),
    }
    return summary, intervals


def _no_change_found(incidents: pd.DataFrame) -> np.ndarray:
    """Per incident, True when the detector found no change and the verdict read a fallback
    window (the span after its first quarter, or the whole span): its onset error and
    overlap then score that fallback, not a window the detector placed."""
    return incidents["window_source"].str.startswith(NO_CHANGE_FOUND).to_numpy(dtype=bool)


def _window_placed(cases: pd.DataFrame) -> np.ndarray:
    """Per case, True when the detector placed the incident window (any ``window_source`` that
    begins with "detected", a second scan's included, other than the no-change fallback)."""
    source = cases["window_source"].astype(str)
    return (source.str.startswith("detected") &
            ~source.str.startswith(NO_CHANGE_FOUND)).to_numpy(dtype=bool)


def _holds_onset(incidents: pd.DataFrame) -> np.ndarray:
    """Per incident, 1.0 when the incident window classified holds the true onset (its start at
    most :data:`ONSET_TOLERANCE_MIN` after it, its end after it), else 0.0 (no window, or one
    that misses the onset: the diagnosis then compared the wrong periods)."""
    found = incidents["incident"].map(lambda w: tuple(w) if isinstance(w, (tuple, list))
                                      else (None, None))
    start = pd.to_datetime(found.map(lambda w: w[0]), utc=True)
    end = pd.to_datetime(found.map(lambda w: w[1]), utc=True)
    onset = pd.to_datetime(incidents["truth_onset"], utc=True)
    late = pd.Timedelta(minutes=ONSET_TOLERANCE_MIN)
    held = (start - late <= onset) & (onset < end)  # NaT (no window, no onset) compares False
    return held.to_numpy(dtype=float)


def write_report(report: EvaluationReport, path: str | Path) -> Path:
    """Write the report as JSON."""
    path = Path(path)
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return path
