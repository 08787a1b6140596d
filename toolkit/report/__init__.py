"""Reports: papermill-templated postmortems and weekly health reports, exported to HTML.

* :func:`render_postmortem` executes ``notebooks/templates/postmortem.py`` for one incident and
  writes the executed notebook, its HTML and ``results.json``;
* :func:`render_weekly` does the same for an ISO week with ``weekly_report.py``;
* :class:`Postmortem` / :class:`WeeklyReport` hold the sections the templates display.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from toolkit.errors import InvalidParameterError
from toolkit.report.notebook import Rendered, ReportError, render_template, template_names
from toolkit.report.postmortem import Postmortem
from toolkit.report.weekly import WeeklyReport
from toolkit.types import Window

__all__ = ["render_postmortem", "render_weekly", "Postmortem", "WeeklyReport", "Rendered",
           "ReportError", "template_names"]


def render_postmortem(
    db: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    incident: Window | str | None = None,
    baseline: Window | str | None = None,
    incident_id: str = "incident",
    title: str = "",
    hide_code: bool = True,
    timeout: int = 900,
    engine: str = "duckdb",
    tables: str | Mapping[str, str] = "",
) -> Rendered:
    """Render the postmortem of the incident in case ``db`` into ``out_dir``.

    Writes ``postmortem.ipynb`` (executed), ``postmortem.html`` and ``results.json`` (the
    classification and headline numbers). Windows are detected from the data when omitted.
    With ``engine="spark"``, ``db`` is ``None`` and ``tables`` names where the canonical
    tables live (``requests=LOCATION,labels=LOCATION,...`` or a mapping; see
    :func:`toolkit.store.lake.connect_lake`); the notebook's kernel starts its own Spark.

    Raises
    ------
    InvalidParameterError
        A missing case file, an unknown engine, ``db`` and ``tables`` mixed up, a malformed
        ``tables`` or window (all checked before the notebook runs).

    Examples
    --------
    >>> import toolkit as tk  # doctest: +SKIP
    >>> tk.render_postmortem("data/interim/INC-042.duckdb", "out/INC-042")  # doctest: +SKIP
    Rendered(notebook=PosixPath('out/INC-042/postmortem.ipynb'), ...)
    """
    source = _case_source(db, engine, tables)
    out = Path(out_dir).resolve()
    parameters = {
        **source,
        "incident": str(incident) if incident is not None else "",
        "baseline": str(baseline) if baseline is not None else "",
        "incident_id": str(incident_id),
        "title": str(title),
    }
    for name in ("incident", "baseline"):
        if parameters[name]:
            Window.parse(parameters[name])  # fail here, not inside the notebook
    rendered = render_template("postmortem", parameters, out, stem="postmortem",
                               hide_code=hide_code, timeout=timeout)
    return Rendered(rendered.notebook, rendered.html, out / "results.json")


def render_weekly(
    db: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    week: str,
    hide_code: bool = True,
    timeout: int = 900,
    engine: str = "duckdb",
    tables: str | Mapping[str, str] = "",
) -> Rendered:
    """Render the weekly report of ISO week ``week`` (e.g. ``2026-W47``) into ``out_dir``.

    With ``engine="spark"``, ``db`` is ``None`` and ``tables`` names where the canonical
    tables live, as for :func:`render_postmortem`.

    Raises
    ------
    EmptyWindowError
        The week has no requests and no metrics (checked before the notebook runs for a
        DuckDB case, so a scheduler gets a clear error and no empty page; a lake case is
        checked by the notebook's kernel, which starts Spark, and the render fails with it).
    InvalidParameterError
        A missing case file, an unknown engine, ``db`` and ``tables`` mixed up, a malformed
        ``tables`` or week.
    """
    source = _case_source(db, engine, tables)
    week = _iso_week(week)
    window = Window.parse(week)
    if engine == "duckdb":
        from toolkit.report.weekly import check_week_has_data
        from toolkit.store import connect

        con = connect(source["db"], read_only=True)
        try:
            check_week_has_data(con, window, week, source["db"])
        finally:
            con.close()
    out = Path(out_dir).resolve()
    rendered = render_template("weekly_report", {**source, "week": week}, out,
                               stem=f"weekly-{week}", hide_code=hide_code, timeout=timeout)
    return Rendered(rendered.notebook, rendered.html, out / "results.json")


def _iso_week(week: str) -> str:
    """``week`` as ``YYYY-Www`` rebuilt from its validated numbers (it names output files)."""
    match = re.fullmatch(r"(\d{4})-W(\d{2})", str(week))
    if match is None:
        raise InvalidParameterError(f"week must be an ISO week such as 2026-W47. Got {week!r}.")
    return f"{int(match.group(1)):04d}-W{int(match.group(2)):02d}"


def _case_source(db: str | os.PathLike[str] | None, engine: str,
                 tables: str | Mapping[str, str]) -> dict[str, str]:
    """The notebook parameters naming the case (``db``, ``engine``, ``tables``), validated:
    an existing case file for DuckDB; for Spark, a ``tables`` spec rebuilt from its parsed
    pairs (canonical table names, one location each, no control characters)."""
    if engine == "duckdb":
        if tables:
            raise InvalidParameterError("tables goes with engine='spark' (a DuckDB case is one "
                                        "file: db).")
        if db is None or not str(db):
            raise InvalidParameterError("give the case: db (or engine='spark' with tables).")
        return {"db": str(_existing_case(db)), "engine": "duckdb", "tables": ""}
    if engine != "spark":
        raise InvalidParameterError(f"engine must be duckdb or spark; got {engine!r}.")
    if db is not None and str(db):
        raise InvalidParameterError("engine='spark' reads tables, not db: give one of them.")
    from toolkit.store.lake import LakeSource, parse_tables_spec

    if not tables:
        raise InvalidParameterError("engine='spark' needs tables: "
                                    "requests=LOCATION,labels=LOCATION,...")
    pairs = dict(tables) if isinstance(tables, Mapping) else parse_tables_spec(tables)
    for name, location in pairs.items():
        text = str(location)
        # an unknown table, an empty location or a control character fails in parse; a comma
        # would split the spec rebuilt below
        LakeSource.parse(str(name), text)
        if "," in text:
            raise InvalidParameterError(f"tables[{name!r}]: the location {text!r} holds a "
                                        "comma; give one location per table.")
    return {"db": "", "engine": "spark",
            "tables": ",".join(f"{name}={location}" for name, location in pairs.items())}


def _existing_case(db: str | os.PathLike[str]) -> Path:
    path = Path(db).expanduser().resolve()
    if not path.is_file():
        raise InvalidParameterError(f"No case database at {path}.")
    return path
