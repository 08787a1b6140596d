"""Column mappings shipped with the toolkit for public exports (``--mapping NAME``)."""
