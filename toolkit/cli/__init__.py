"""The ``forensics`` command line.

Exit codes: 0 on success, 1 when the work failed (the message says why), 2 on usage errors.
"""

from __future__ import annotations

import sys

from toolkit.cli.app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``forensics`` console script."""
    from toolkit.cli import commands  # noqa: F401  (registers the commands)

    try:
        app(args=argv, prog_name="forensics", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
