"""End-to-end tests on the real exports in ../shared/realdata (skipped when absent)."""
