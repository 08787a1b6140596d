"""The case store: one DuckDB database per incident, with the canonical schema.

``connect`` opens or creates a case; ``schema`` names every table and column; ``summary``
describes what a case holds.
"""

from toolkit.store.connection import connect, ensure_schema, schema_version
from toolkit.store.summary import CaseSummary, summarize

__all__ = ["connect", "ensure_schema", "schema_version", "CaseSummary", "summarize"]
