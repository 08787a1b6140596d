"""The Typer application and the shared plumbing of every command."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console

from toolkit._version import __version__
from toolkit.errors import InvalidParameterError, ToolkitError

__all__ = ["app", "console", "err_console", "handle_errors", "usage_errors", "safe"]

app = typer.Typer(
    name="forensics",
    help="Incident forensics for ML inference systems: load exported logs into a DuckDB case, "
    "query, diagnose, classify and report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI on some terminals),
# and lone surrogates (undecodable bytes of a command-line argument).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_AND_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object, *, newlines: bool = True) -> str:
    r"""``text`` with every terminal control character written out as an escape.

    Log content (a model version, a host, a reject reason) can carry escape sequences such as
    ``\x1b]0;title\x07`` or ``\x1b[2J``; printed raw they retitle or clear the terminal, or
    hide text. ``newlines=False`` escapes line breaks and tabs too, for one-line output.

    Examples
    --------
    >>> safe("v2\x1b[2J")
    'v2\\x1b[2J'
    >>> safe("a\nb", newlines=False)
    'a\\x0ab'
    """
    pattern = _CONTROL if newlines else _CONTROL_AND_BREAKS
    return pattern.sub(_escape, str(text))


def _error(exc: BaseException) -> None:
    err_console.print(f"error: {safe(exc)}", markup=False)


def handle_errors(func: F) -> F:
    """Turn the toolkit's expected errors into one message on stderr and exit code 1
    (2 for the usage errors raised inside :func:`usage_errors`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ToolkitError as exc:
            _error(exc)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:  # pragma: no cover - interactive only
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Report an :class:`InvalidParameterError` raised inside as a usage error: one line on
    stderr and exit code 2 (a bad option value, a --db that is not a case, ...)."""
    try:
        yield
    except InvalidParameterError as exc:
        _error(exc)
        raise typer.Exit(2) from None


def interactive() -> bool:
    """Whether progress bars make sense (a terminal, and not under CI)."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def _version(value: bool) -> None:
    if value:
        console.print(f"forensics {__version__}", markup=False)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Incident forensics for ML inference systems: load exported logs into a DuckDB case,
    query, diagnose, classify and report."""
