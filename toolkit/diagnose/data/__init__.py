"""Data-pathway diagnostics: input drift, data quality, unit changes, permuted features."""
