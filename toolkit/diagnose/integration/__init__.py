"""Integration-pathway diagnostics: version skew, client errors, timeouts, cache staleness."""
