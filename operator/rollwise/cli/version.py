"""The version of this rollwise installation, read from its package metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "rollwise"


def installed_version() -> str:
    """The version of the installed `rollwise` distribution ("unknown" when run from a tree
    that was never installed)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
