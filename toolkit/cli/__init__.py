"""The ``forensics`` command line.

Exit codes: 0 on success, 1 when the work failed (the message says why), 2 on usage errors
(a missing or malformed option, a ``--db`` that is not a case, an out-of-range window).
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperArgument

from toolkit.cli.app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``forensics`` console script."""
    from toolkit.cli import commands  # noqa: F401  (registers the commands)

    command = typer.main.get_command(app)
    _plain_argument_help(command)
    try:
        command(args=argv, prog_name="forensics", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def _plain_argument_help(command: object) -> None:
    """Drop Typer's Python type label after a variadic argument in ``--help``.

    Typer prints ``PATH <list[Path]>`` for ``paths: list[Path]``, a Python detail; the
    argument's metavar says enough.
    """
    for param in getattr(command, "params", ()):
        if isinstance(param, TyperArgument) and param.nargs != 1 and param.metavar:
            param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
    for sub in getattr(command, "commands", {}).values():
        _plain_argument_help(sub)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
