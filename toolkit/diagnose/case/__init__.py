"""Diagnostics about the whole case: traffic shape and where failures concentrate."""
