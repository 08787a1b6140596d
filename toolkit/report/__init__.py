"""Reports: papermill-templated postmortems and weekly health reports, exported to HTML.

* :func:`render_postmortem` executes ``notebooks/templates/postmortem.py`` for one incident and
  writes the executed notebook, its HTML and ``results.json``;
* :func:`render_weekly` does the same for an ISO week with ``weekly_report.py``;
* :class:`Postmortem` / :class:`WeeklyReport` hold the sections the templates display.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from toolkit.errors import InvalidParameterError
from toolkit.report.notebook import Rendered, ReportError, render_template, template_names
from toolkit.report.postmortem import Postmortem
from toolkit.report.weekly import WeeklyReport
from toolkit.types import Window

__all__ = ["render_postmortem", "render_weekly", "Postmortem", "WeeklyReport", "Rendered",
           "ReportError", "template_names"]


def render_postmortem(
    db: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    incident: Window | str | None = None,
    baseline: Window | str | None = None,
    incident_id: str = "incident",
    title: str = "",
    hide_code: bool = True,
    timeout: int = 900,
) -> Rendered:
    """Render the postmortem of the incident in case ``db`` into ``out_dir``.

    Writes ``postmortem.ipynb`` (executed), ``postmortem.html`` and ``results.json`` (the
    classification and headline numbers). Windows are detected from the data when omitted.

    Examples
    --------
    >>> import toolkit as tk  # doctest: +SKIP
    >>> tk.render_postmortem("data/interim/INC-042.duckdb", "out/INC-042")  # doctest: +SKIP
    Rendered(notebook=PosixPath('out/INC-042/postmortem.ipynb'), ...)
    """
    db_path = _existing_case(db)
    out = Path(out_dir).resolve()
    parameters = {
        "db": str(db_path),
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
    db: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    week: str,
    hide_code: bool = True,
    timeout: int = 900,
) -> Rendered:
    """Render the weekly report of ISO week ``week`` (e.g. ``2026-W47``) into ``out_dir``.

    Raises
    ------
    EmptyWindowError
        The week has no requests and no metrics (checked before the notebook runs, so a
        scheduler gets a clear error and no empty page).
    """
    db_path = _existing_case(db)
    week = _iso_week(week)
    window = Window.parse(week)
    from toolkit.report.weekly import check_week_has_data
    from toolkit.store import connect

    con = connect(db_path, read_only=True)
    try:
        check_week_has_data(con, window, week, db_path)
    finally:
        con.close()
    out = Path(out_dir).resolve()
    rendered = render_template("weekly_report", {"db": str(db_path), "week": week}, out,
                               stem=f"weekly-{week}", hide_code=hide_code, timeout=timeout)
    return Rendered(rendered.notebook, rendered.html, out / "results.json")


def _iso_week(week: str) -> str:
    """``week`` as ``YYYY-Www`` rebuilt from its validated numbers (it names output files)."""
    match = re.fullmatch(r"(\d{4})-W(\d{2})", str(week))
    if match is None:
        raise InvalidParameterError(f"week must be an ISO week such as 2026-W47. Got {week!r}.")
    return f"{int(match.group(1)):04d}-W{int(match.group(2)):02d}"


def _existing_case(db: str | os.PathLike[str]) -> Path:
    path = Path(db).expanduser().resolve()
    if not path.is_file():
        raise InvalidParameterError(f"No case database at {path}.")
    return path
