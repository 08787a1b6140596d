"""The gate's verdict: one row per check, as text, JSON and JUnit XML."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Check", "GateResult"]

# Characters XML 1.0 cannot carry (C0 controls but tab and newlines, surrogates, U+FFFE/F):
# log content (a model version, an event's detail) may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: object) -> str:
    """``value`` as text XML can hold: forbidden characters written out as escapes."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else
                        f"\\u{ord(m.group()):04x}", str(value))


@dataclass(frozen=True)
class Check:
    """One policy check: ``status`` is ``pass``, ``fail`` or ``skip``."""

    name: str
    status: str
    summary: str
    measured: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary,
                "measured": _clean(self.measured), "thresholds": _clean(self.thresholds)}


@dataclass(frozen=True)
class GateResult:
    """The verdict of :func:`toolkit.gate.gate`.

    Attributes
    ----------
    candidate, baseline
        The model versions compared.
    endpoint, profile
        The candidate's endpoint and the tolerance profile it chose.
    checks
        Every check run, in order.
    policy
        The policy file used.
    window
        The period compared (ISO start/end): where both versions served, when they overlap.
    """

    candidate: str
    baseline: str
    endpoint: str | None
    profile: str
    checks: tuple[Check, ...]
    policy: str
    window: tuple[str, str] | None = None

    @property
    def passed(self) -> bool:
        """Whether no check failed."""
        return not any(c.status == "fail" for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when the gate passes, 1 when it fails."""
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": "pass" if self.passed else "fail", "candidate": self.candidate,
                "baseline": self.baseline, "endpoint": self.endpoint, "profile": self.profile,
                "policy": self.policy, "window": list(self.window) if self.window else None,
                "checks": [c.to_dict() for c in self.checks]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_text(self) -> str:
        """A readable verdict: one line per check, the failures spelled out."""
        head = (f"gate {'PASSED' if self.passed else 'FAILED'}: candidate {self.candidate} vs "
                f"baseline {self.baseline} (endpoint {self.endpoint or '-'}, profile "
                f"{self.profile})")
        lines = [head]
        for c in self.checks:
            lines.append(f"  [{c.status.upper():<4}] {c.name}: {c.summary}")
        failed = [c.name for c in self.checks if c.status == "fail"]
        if failed:
            lines.append(f"failed: {', '.join(failed)}")
        return "\n".join(lines)

    def to_junit(self) -> str:
        """JUnit XML (one ``testsuite``, one ``testcase`` per check) for CI systems."""
        suite = ET.Element("testsuite", {
            "name": _xml_text(f"forensics gate {self.candidate}"),
            "tests": str(len(self.checks)),
            "failures": str(sum(c.status == "fail" for c in self.checks)),
            "skipped": str(sum(c.status == "skip" for c in self.checks)), "errors": "0"})
        props = ET.SubElement(suite, "properties")
        for key in ("candidate", "baseline", "endpoint", "profile", "policy"):
            ET.SubElement(props, "property", {"name": key,
                                              "value": _xml_text(getattr(self, key))})
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", {"classname": "forensics.gate",
                                                     "name": c.name})
            if c.status == "fail":
                failure = ET.SubElement(case, "failure", {"message": _xml_text(c.summary)})
                failure.text = json.dumps(c.to_dict(), indent=2)  # escapes every control
            elif c.status == "skip":
                ET.SubElement(case, "skipped", {"message": _xml_text(c.summary)})
            else:
                out = ET.SubElement(case, "system-out")
                out.text = json.dumps(c.to_dict(), indent=2)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value
