"""Notebook templates (jupytext percent scripts), shipped as ``toolkit.report.templates``."""
