"""The gate's policy: which checks run and the thresholds of each tolerance profile (TOML)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from toolkit.errors import InvalidParameterError

__all__ = ["Policy", "Profile", "load_policy", "template_path", "CHECKS"]

CHECKS = ("accuracy", "calibration", "latency", "errors", "lineage", "cache")
_NUMBERS = ("max_accuracy_drop", "min_labels", "max_ece_increase", "max_ece",
            "confident_threshold", "max_confident_wrong_increase", "max_latency_p99_ms",
            "max_latency_p99_ratio", "max_error_rate", "max_error_rate_increase",
            "min_requests")


@dataclass(frozen=True)
class Profile:
    """Thresholds of one tolerance profile (``realtime``, ``batch``, ...); see the template."""

    name: str
    max_accuracy_drop: float
    accuracy_rule: str
    min_labels: int
    max_ece_increase: float
    max_ece: float
    confident_threshold: float
    max_confident_wrong_increase: float
    max_latency_p99_ms: float
    max_latency_p99_ratio: float
    max_error_rate: float
    max_error_rate_increase: float
    min_requests: int


@dataclass(frozen=True)
class Policy:
    """A parsed gate policy.

    Attributes
    ----------
    source
        The file it came from.
    default_profile
        The profile of endpoints not listed in ``endpoints``.
    checks
        Check name -> whether it runs.
    missing
        Check name -> ``"fail"`` or ``"skip"`` when its data is missing.
    endpoints
        Endpoint -> profile name.
    profiles
        Profile name -> :class:`Profile`.
    """

    source: str
    default_profile: str
    checks: dict[str, bool] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)

    def profile_for(self, endpoint: str | None) -> Profile:
        """The profile of ``endpoint`` (the default profile when unlisted)."""
        return self.profiles[self.endpoints.get(str(endpoint), self.default_profile)]


def template_path() -> Path:
    """The policy template shipped with the package."""
    return Path(str(resources.files("toolkit.gate").joinpath("policy_template.toml")))


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file (the packaged template when ``path`` is None).

    Raises
    ------
    InvalidParameterError
        The file is missing, is not TOML, or names an unknown check, profile or value; the
        message names the file and the key.
    """
    path = Path(path) if path is not None else template_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidParameterError(f"{path}: cannot read the gate policy ({exc.strerror}).") \
            from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"{path}: not a valid TOML gate policy: {exc}") from None
    return _parse(data, str(path))


def _parse(data: dict[str, Any], source: str) -> Policy:
    def bad(key: str, why: str) -> InvalidParameterError:
        return InvalidParameterError(f"{source}: {key}: {why}")

    raw_profiles = data.get("profiles")
    if not isinstance(raw_profiles, dict) or not raw_profiles:
        raise bad("profiles", "at least one [profiles.NAME] table is required")
    profiles = {}
    for name, values in raw_profiles.items():
        if not isinstance(values, dict):
            raise bad(f"profiles.{name}", "must be a table")
        unknown = set(values) - set(_NUMBERS) - {"accuracy_rule"}
        if unknown:
            raise bad(f"profiles.{name}", f"unknown key(s) {', '.join(sorted(unknown))}")
        missing = [k for k in _NUMBERS if k not in values]
        if missing:
            raise bad(f"profiles.{name}", f"missing {', '.join(missing)}")
        numbers = {}
        for key in _NUMBERS:
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise bad(f"profiles.{name}.{key}", f"must be a number >= 0, got {value!r}")
            numbers[key] = int(value) if key.startswith("min_") else float(value)
        rule = values.get("accuracy_rule", "point")
        if rule not in ("point", "non_inferiority"):
            raise bad(f"profiles.{name}.accuracy_rule",
                      f"must be 'point' or 'non_inferiority', got {rule!r}")
        profiles[name] = Profile(name=name, accuracy_rule=rule, **numbers)
    default = data.get("default_profile", next(iter(profiles)))
    if default not in profiles:
        raise bad("default_profile", f"{default!r} is not a profile ({', '.join(profiles)})")
    checks = {c: True for c in CHECKS}
    for key, value in (data.get("checks") or {}).items():
        if key not in CHECKS or not isinstance(value, bool):
            raise bad(f"checks.{key}", f"checks are {', '.join(CHECKS)} = true/false")
        checks[key] = value
    missing = {c: "fail" for c in CHECKS}
    for key, value in (data.get("missing") or {}).items():
        if key not in CHECKS or value not in ("fail", "skip"):
            raise bad(f"missing.{key}", f"checks are {', '.join(CHECKS)} = 'fail' or 'skip'")
        missing[key] = value
    endpoints = {}
    for key, value in (data.get("endpoints") or {}).items():
        if value not in profiles:
            raise bad(f"endpoints.{key}", f"{value!r} is not a profile ({', '.join(profiles)})")
        endpoints[str(key)] = value
    return Policy(source=source, default_profile=default, checks=checks, missing=missing,
                  endpoints=endpoints, profiles=profiles)
