"""Classification: findings -> causal pathway, failure mode, onset, rationale, remediation.

The rules (``rules.toml``) and scoring (``engine``) never touch the database;
:func:`classify_incident` runs the diagnostics first and hands their findings over.
"""

from toolkit.classify.api import Classification, classify_incident, default_baseline
from toolkit.classify.engine import Evidence, Verdict, score
from toolkit.classify.remediation import REMEDIATION, remediation_for
from toolkit.classify.rules import RuleTable, load_rules
from toolkit.classify.taxonomy import FAILURE_MODES, PATHWAY_OF, PATHWAYS
from toolkit.classify.windows import DetectedWindows, detect_windows

__all__ = [
    "classify_incident",
    "Classification",
    "default_baseline",
    "Evidence",
    "Verdict",
    "score",
    "REMEDIATION",
    "remediation_for",
    "RuleTable",
    "load_rules",
    "FAILURE_MODES",
    "PATHWAY_OF",
    "PATHWAYS",
    "DetectedWindows",
    "detect_windows",
]
