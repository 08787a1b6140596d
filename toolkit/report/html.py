"""Safe HTML for notebook outputs: log content is untrusted, so every value is escaped.

Reports render text that comes from the logs (error types, versions, host names, categorical
feature values). It reaches the HTML only through these helpers, which escape it; markdown is
never built from log content (markdown passes raw HTML through).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import pandas as pd

from toolkit.report.format import fmt_value, format_frame

__all__ = ["escape", "table", "paragraph", "heading", "items", "note", "key_values",
           "figure_html", "Html"]


class Html:
    """An HTML fragment that notebooks display (``_repr_html_``); build it with the helpers."""

    def __init__(self, fragment: str) -> None:
        self.fragment = fragment

    def _repr_html_(self) -> str:
        return self.fragment

    def __add__(self, other: Html) -> Html:
        return Html(self.fragment + other.fragment)

    def __str__(self) -> str:
        return self.fragment


def escape(value: Any) -> str:
    """Escape any value for HTML text or attribute content.

    Examples
    --------
    >>> escape('<script>alert("x")</script>')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    """
    return html.escape(fmt_value(value), quote=True)


def table(frame: pd.DataFrame, *, max_rows: int = 30, caption: str | None = None,
          reasons: dict[str, str] | None = None) -> Html:
    """A DataFrame as an escaped HTML table, every cell through the report's formatter.

    ``reasons`` maps a column to why its missing values are missing (``n/a (reason)``).
    """
    if frame is None or frame.empty:
        return note("no rows")
    shown = format_frame(frame.head(max_rows), reasons=reasons)
    body = shown.to_html(index=False, escape=True, border=0, classes="forensics-table")
    extra = f"<p class='muted'>{len(frame) - max_rows:,} more rows not shown.</p>" \
        if len(frame) > max_rows else ""
    title = f"<p class='caption'>{escape(caption)}</p>" if caption else ""
    return Html(title + body + extra)


def paragraph(text: str) -> Html:
    return Html(f"<p>{escape(text)}</p>")


def heading(text: str, level: int = 3) -> Html:
    return Html(f"<h{level}>{escape(text)}</h{level}>")


def items(values: Iterable[str], *, ordered: bool = False) -> Html:
    tag = "ol" if ordered else "ul"
    body = "".join(f"<li>{escape(v)}</li>" for v in values)
    return Html(f"<{tag}>{body}</{tag}>")


def note(text: str) -> Html:
    """A one-line note, e.g. why a section has no data."""
    return Html(f"<p class='muted'><i>{escape(text)}</i></p>")


def key_values(pairs: dict[str, Any]) -> Html:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{html.escape(fmt_value(v, str(k)))}</td></tr>"
                   for k, v in pairs.items())
    return Html(f"<table class='forensics-kv'>{rows}</table>")


def figure_html(figure: Any, alt: str = "figure") -> Html:
    """A matplotlib figure as an inline PNG (closed afterwards, so it is shown once).

    Every figure goes through :func:`toolkit.plotting.polish` first (readable log and date
    ticks, rates starting at 0, merged annotations).
    """
    import base64
    import io
    import warnings

    import matplotlib.pyplot as plt

    from toolkit.plotting import polish

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # matplotlib's hint that placing a default ("best") legend took over a second: a
        # matter of the machine's load, not of the figure (a loaded CI run raised it)
        warnings.filterwarnings("ignore", message="Creating legend with loc=\"best\"",
                                category=UserWarning)
        polish(figure)
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Html(f"<img class='forensics-figure' alt='{escape(alt)}' "
                f"src='data:image/png;base64,{data}' style='max-width:100%'/>")
