"""Load and evaluate the rule table (``rules.toml``): thresholds and weights are data."""

from __future__ import annotations

import operator
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.classify.taxonomy import PATHWAY_OF
from toolkit.diagnose._base import SEVERITIES, Finding
from toolkit.errors import InvalidParameterError

__all__ = ["Rule", "RuleTable", "load_rules", "SEVERITY_SCALE"]

SEVERITY_SCALE = {"info": 0.2, "low": 0.4, "medium": 0.7, "high": 1.0}
_OPS = {
    "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
    "abs_lt": lambda a, b: abs(a) < b, "abs_le": lambda a, b: abs(a) <= b,
    "abs_gt": lambda a, b: abs(a) > b, "abs_ge": lambda a, b: abs(a) >= b,
}
#: Operators on a text (or any) evidence value: equal to ``value``, or one of a list of values.
_TEXT_OPS = ("exists", "true", "eq", "in")
_CONDITION_KEYS = {"finding", "no_finding", "min_severity", "evidence", "op", "value", "event",
                   "no_event", "artifact", "before_hours", "after_hours", "detail"}


@dataclass(frozen=True)
class Rule:
    """One row of the rule table."""

    name: str
    when: tuple[dict[str, Any], ...]
    add: dict[str, float]
    scale: bool = False


@dataclass(frozen=True)
class RuleTable:
    """The parsed rule table."""

    rules: tuple[Rule, ...]
    priors: dict[str, float]
    scoring: dict[str, float] = field(default_factory=dict)
    onset_events: dict[str, tuple[dict[str, str], ...]] = field(default_factory=dict)

    @property
    def base(self) -> float:
        return float(self.scoring.get("base", -3.0))


@dataclass(frozen=True)
class Context:
    """What conditions are evaluated against."""

    findings: dict[str, Finding]
    events: pd.DataFrame
    onset: datetime


def load_rules(path: str | Path | None = None) -> RuleTable:
    """Read a rule table (the packaged ``rules.toml`` by default) and validate it.

    Raises
    ------
    InvalidParameterError
        On an unknown failure mode, condition key or operator; the message names the rule.
    """
    if path is None:
        return _packaged()
    return _parse(tomllib.loads(Path(path).read_text(encoding="utf-8")), str(path))


@cache
def _packaged() -> RuleTable:
    folder = resources.files("toolkit.classify")
    data = tomllib.loads((folder / "rules.toml").read_text(encoding="utf-8"))
    extra = sorted((entry for entry in folder.iterdir()
                    if entry.name.startswith("rules_") and entry.name.endswith(".toml")),
                   key=lambda entry: entry.name)
    for entry in extra:
        data = merge_tables(data, tomllib.loads(entry.read_text(encoding="utf-8")))
    return _parse(data, "rules.toml" + "".join(f" + {entry.name}" for entry in extra))


def merge_tables(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Add a rule file's rules, priors and onset events to a rule table (as parsed TOML).

    The packaged table is ``rules.toml`` plus every ``rules_*.toml`` beside it (one per family
    of failure modes, e.g. the generative ones), merged in name order: rules are appended,
    priors and onset events of a mode are set by the file that names it. ``[scoring]`` belongs
    to ``rules.toml`` alone.

    Examples
    --------
    >>> merged = merge_tables({"rules": [{"name": "a"}], "priors": {"x": 1.0}},
    ...                       {"rules": [{"name": "b"}], "priors": {"y": 2.0}})
    >>> [r["name"] for r in merged["rules"]], merged["priors"]
    (['a', 'b'], {'x': 1.0, 'y': 2.0})
    """
    if "scoring" in extra:
        raise InvalidParameterError("[scoring] may only be set in rules.toml, not in an "
                                    "additional rule file.")
    merged = dict(base)
    merged["rules"] = [*base.get("rules", []), *extra.get("rules", [])]
    for table in ("priors", "onset_events"):
        merged[table] = {**base.get(table, {}), **extra.get(table, {})}
    return merged


def _parse(data: dict[str, Any], origin: str) -> RuleTable:
    rules = []
    for raw in data.get("rules", []):
        name = raw.get("name", "?")
        for mode in raw.get("add", {}):
            if mode not in PATHWAY_OF:
                raise InvalidParameterError(f"{origin}: rule {name!r} names unknown failure "
                                            f"mode {mode!r}.")
        for condition in raw.get("when", []):
            unknown = set(condition) - _CONDITION_KEYS
            if unknown:
                raise InvalidParameterError(f"{origin}: rule {name!r} has unknown condition "
                                            f"keys {sorted(unknown)}.")
            if "op" in condition and condition["op"] not in (*_OPS, *_TEXT_OPS):
                raise InvalidParameterError(f"{origin}: rule {name!r} uses unknown op "
                                            f"{condition['op']!r}.")
        rules.append(Rule(name, tuple(raw.get("when", [])), dict(raw["add"]),
                          bool(raw.get("scale", False))))
    priors = {mode: float(data.get("priors", {}).get(mode, 1.0)) for mode in PATHWAY_OF}
    onset_events = {}
    for mode, specs in data.get("onset_events", {}).items():
        if mode not in PATHWAY_OF:
            raise InvalidParameterError(f"{origin}: [onset_events] names unknown failure mode "
                                        f"{mode!r}.")
        onset_events[mode] = tuple(dict(spec) for spec in specs)
    return RuleTable(tuple(rules), priors, dict(data.get("scoring", {})), onset_events)


def holds(condition: dict[str, Any], context: Context) -> bool:
    """Whether one condition holds in ``context``."""
    if "finding" in condition:
        finding = context.findings.get(condition["finding"])
        if finding is None or not _severe_enough(finding, condition.get("min_severity")):
            return False
        if "evidence" in condition:
            # a path with a wildcard names several values: the condition holds when one does
            return any(_compares(value, condition)
                       for value in _lookup(finding.evidence, condition["evidence"]))
        return True
    if "no_finding" in condition:
        # A weak (low or info) finding does not count as present for an exclusion.
        finding = context.findings.get(condition["no_finding"])
        return finding is None or not _severe_enough(finding,
                                                     condition.get("min_severity", "medium"))
    if "event" in condition:
        return not _events(condition, condition["event"], context).empty
    if "no_event" in condition:
        return _events(condition, condition["no_event"], context).empty
    raise InvalidParameterError(f"condition {condition} has no finding/no_finding/event key")


def severity_of(rule: Rule, context: Context) -> str | None:
    """Severity of the rule's first finding condition."""
    for condition in rule.when:
        if "finding" in condition and condition["finding"] in context.findings:
            return context.findings[condition["finding"]].severity
    return None


def _severe_enough(finding: Finding, minimum: str | None) -> bool:
    return minimum is None or SEVERITIES.index(finding.severity) >= SEVERITIES.index(minimum)


def _compares(value: Any, condition: dict[str, Any]) -> bool:
    """Whether one evidence value satisfies the condition's ``op`` and ``value``."""
    if condition.get("op") == "exists":
        return value is not None and value != {} and value != []
    if condition.get("op") == "true":
        return value is True
    if condition.get("op") in ("eq", "in"):
        wanted = condition["value"] if condition["op"] == "in" else [condition["value"]]
        return value is not None and value in list(wanted)
    if value is None or isinstance(value, (dict, list)):
        return False
    try:
        return bool(_OPS[condition["op"]](float(value), float(condition["value"])))
    except (TypeError, ValueError):
        return False


def _lookup(evidence: dict[str, Any], key: str) -> list[Any]:
    """The values at a dotted path of ``evidence`` (none when the path is absent).

    A part is a dict key; a number indexes a list (``null_rate.1``: the incident's of a
    [baseline, incident] pair); ``*`` stands for every key of a dict (every feature of
    ``features.*.null_rate.1``), so a path may name several values.
    """
    values: list[Any] = [evidence]
    for part in key.split("."):
        found: list[Any] = []
        for value in values:
            if part == "*" and isinstance(value, dict):
                found.extend(value.values())
            elif isinstance(value, dict) and part in value:
                found.append(value[part])
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                found.append(value[int(part)])
        values = found
    return values


def _events(condition: dict[str, Any], kind: str, context: Context) -> pd.DataFrame:
    events = context.events
    if events.empty:
        return events
    before = timedelta(hours=float(condition.get("before_hours", 6)))
    after = timedelta(hours=float(condition.get("after_hours", 0.5)))
    onset = pd.Timestamp(context.onset)
    chosen = events[(events["kind"] == kind) & (events["ts"] >= onset - before) &
                    (events["ts"] <= onset + after)]
    if "artifact" in condition:
        chosen = chosen[chosen["artifact"] == condition["artifact"]]
    if "detail" in condition:
        key = condition["detail"]
        chosen = chosen[chosen["detail"].map(lambda d: isinstance(d, dict) and key in d)]
    return chosen
