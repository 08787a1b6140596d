"""The package's public surface: what completion offers and what resolves."""

from __future__ import annotations

import toolkit as tk


def test_completion_offers_the_public_api_and_not_module_helpers():
    names = dir(tk)
    for public in ("classify_incident", "run_diagnostics", "diagnose", "connect", "load",
                   "render_postmortem", "render_weekly"):
        assert public in names
    # The module's own imports are not part of the API.
    for helper in ("Any", "import_module", "annotations"):
        assert helper not in names


def test_every_name_in_all_resolves():
    for name in tk.__all__:
        assert getattr(tk, name) is not None, name
