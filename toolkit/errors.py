"""The toolkit's one exception hierarchy and its warnings.

Every error the toolkit raises on purpose derives from :class:`ToolkitError`, so a caller can
catch them all at once. Each one also derives from the matching builtin (``ValueError``,
``LookupError``, ``OSError``) so generic handlers keep working, as in scikit-learn and ibis.

Examples
--------
>>> import toolkit as tk
>>> issubclass(tk.errors.LoadError, tk.errors.ToolkitError)
True
"""

from __future__ import annotations

__all__ = [
    "ToolkitError",
    "InvalidParameterError",
    "CaseLockedError",
    "SchemaVersionError",
    "MissingTableError",
    "LoadError",
    "FileParseError",
    "MappingError",
    "SchemaMismatchError",
    "AlreadyLoadedChangedError",
    "EmptyWindowError",
    "UnknownDiagnosticError",
    "InsufficientDataWarning",
]


class ToolkitError(Exception):
    """Root of every error raised on purpose by the toolkit."""


class InvalidParameterError(ToolkitError, ValueError, TypeError):
    """A public function got an argument it cannot accept."""


class CaseLockedError(ToolkitError, OSError):
    """The case database is held by another process that opened it for writing."""


class SchemaVersionError(ToolkitError, RuntimeError):
    """The case database's schema is newer than this toolkit, or absent in read-only mode."""


class MissingTableError(ToolkitError, LookupError):
    """A table the caller asked for does not exist in the case."""


class LoadError(ToolkitError, ValueError):
    """A file or frame could not be loaded; the case database is unchanged for it.

    Attributes
    ----------
    path
        The file (or frame label) that failed.
    committed
        When :func:`toolkit.load` stopped part-way through a folder or a list of files: the
        :class:`toolkit.load.LoadReport` of the files committed before this one (they stay in
        the case); ``None`` otherwise.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.committed = None


class FileParseError(LoadError):
    """A file could not be parsed at all (not a row-level problem).

    Attributes
    ----------
    path
        The file.
    position
        Where the reader stopped, as DuckDB reported it (line, byte offset), when known.
    """

    def __init__(self, message: str, *, path: str, position: str | None = None) -> None:
        super().__init__(message, path=path)
        self.position = position


class MappingError(LoadError):
    """A column-mapping file is malformed or refers to columns that do not exist."""


class SchemaMismatchError(LoadError):
    """A file lacks columns its target table requires, or their types cannot be reconciled."""


class AlreadyLoadedChangedError(LoadError):
    """A file with this path was loaded before with different content; pass ``replace=True``."""


class UnknownDiagnosticError(ToolkitError, KeyError):
    """A diagnostic id that is not among the results; the message lists the valid ids."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class EmptyWindowError(ToolkitError, ValueError):
    """A time window holds no rows of the table a computation needs."""


class InsufficientDataWarning(UserWarning):
    """Valid input, but too little of it for a trustworthy statistic."""
