"""Registers every sub-command on the app (import for its side effect)."""

from toolkit.cli import (
    case,  # noqa: F401
    gate,  # noqa: F401
    incident,  # noqa: F401
    shell,  # noqa: F401
    simulate,  # noqa: F401
)
