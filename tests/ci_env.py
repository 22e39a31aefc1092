"""Whether the suite runs in CI, where a missing system tool is a failure, never a skip."""
from __future__ import annotations

import os


def in_ci() -> bool:
    """``CI`` set to true (any case), 1 or yes, as CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
