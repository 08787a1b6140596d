"""Loaders: exported logs (files, folders, frames) into the canonical case tables.

``load`` is the entry point; ``discover`` tells which files a path holds (``survey`` also
which files it leaves out, and why); ``mapping`` reads column-mapping files.
"""

from toolkit.load.api import FileLoad, LoadReport, load, load_many
from toolkit.load.discover import Skipped, SourceFile, discover, survey
from toolkit.load.mapping import Mapping, read_mapping

__all__ = ["load", "load_many", "LoadReport", "FileLoad", "discover", "survey", "SourceFile",
           "Skipped", "Mapping", "read_mapping"]
