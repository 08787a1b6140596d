"""Registers every sub-command on the app (import for its side effect)."""

from toolkit.cli import case  # noqa: F401
