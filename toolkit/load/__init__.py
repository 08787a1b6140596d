"""Loaders: exported logs (files, folders, frames) into the canonical case tables.

``load`` is the entry point; ``discover`` tells which files a path holds; ``mapping`` reads
column-mapping files.
"""

from toolkit.load.api import FileLoad, LoadReport, load, load_many
from toolkit.load.discover import SourceFile, discover
from toolkit.load.mapping import Mapping, read_mapping

__all__ = ["load", "load_many", "LoadReport", "FileLoad", "discover", "SourceFile", "Mapping",
           "read_mapping"]
