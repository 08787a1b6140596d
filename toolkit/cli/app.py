"""The Typer application and the shared plumbing of every command."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from toolkit.errors import ToolkitError

__all__ = ["app", "console", "err_console", "handle_errors"]

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


def handle_errors(func: F) -> F:
    """Turn the toolkit's expected errors into one message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ToolkitError as exc:
            err_console.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:  # pragma: no cover - interactive only
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def interactive() -> bool:
    """Whether progress bars make sense (a terminal, and not under CI)."""
    return sys.stderr.isatty() and not os.environ.get("CI")
