"""Attached cameras.  (A fuller version with capabilities and hotplug comes with the devices work.)"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["list_devices"]


def list_devices() -> list[str]:
    """Return the attached cameras' device paths (Linux: V4L2 capture nodes); [] when none."""
    if sys.platform.startswith("linux"):
        return [f"/dev/{p.name}" for p in sorted(Path("/sys/class/video4linux").glob("video*"))]
    return []
