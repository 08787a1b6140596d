"""Incident simulator: realistic exported logs for every failure mode, with the ground truth.

A simulated binary classifier service (fraud scoring on 8-12 named features with units, a few
categorical ones) runs on several replicas with diurnal traffic; a real logistic model answers,
labels arrive late for part of the traffic, metrics and events are exported as real platforms
do. One failure mode of the taxonomy (DESIGN section 4), or none, is injected with confounders.

* :func:`make_case` plans a case (nothing generated yet);
* :meth:`Case.tables` / :meth:`Case.request_chunks` generate its tables;
* :func:`write_case` writes generic files that ``forensics ingest`` loads with zero rejects,
  plus ``truth.json``; :func:`ingest_case` also loads them into a case database;
* :data:`FAILURE_MODES` (mode -> pathway) and :data:`PRESETS` (the published scenarios);
* ``make_case(..., world="varied")``: a second world where the service, its features, the log
  sampling, labels, tables and columns, metric cadence, event wording, traffic shape, the
  failure's strength, confounders and the onset position are drawn per case
  (:mod:`toolkit.simulate.world`); the default ``world="classic"`` is unchanged.

Examples
--------
>>> from toolkit import simulate
>>> case = simulate.make_case("version_skew", seed=1, rows=5_000)
>>> case.truth()["pathway"], case.injected["pair_not_in_lineage"]
('integration', ['4.19.1', 'fe-1.7.0'])
>>> "rollback-feature-order" in simulate.PRESETS
True
"""

from toolkit.simulate.case import Case, CaseTables, make_case
from toolkit.simulate.ingest import ingest_case
from toolkit.simulate.modes import FAILURE_MODES, PATHWAYS
from toolkit.simulate.presets import PRESETS, Preset
from toolkit.simulate.writer import write_case

__all__ = [
    "make_case",
    "write_case",
    "ingest_case",
    "Case",
    "CaseTables",
    "FAILURE_MODES",
    "PATHWAYS",
    "PRESETS",
    "Preset",
]
