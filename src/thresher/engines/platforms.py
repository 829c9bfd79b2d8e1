"""Operating-system names as engines use them: ``linux``, ``mac`` and ``windows``."""

from __future__ import annotations

import sys
from typing import Final

OS_NAMES: Final = ("linux", "mac", "windows")

_ALIASES: Final = {
    "linux": "linux",
    "linux2": "linux",
    "mac": "mac",
    "macos": "mac",
    "osx": "mac",
    "darwin": "mac",
    "windows": "windows",
    "win": "windows",
    "win32": "windows",
    "win64": "windows",
    "cygwin": "windows",
}


def normalize_os(name: str) -> str:
    """Return the canonical name (``linux``/``mac``/``windows``) for an OS name or alias.

    Raises ``ValueError`` for a name that is none of them.
    """
    try:
        return _ALIASES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown operating system {name!r}; use one of {OS_NAMES}") from None


def local_os(platform: str | None = None) -> str:
    """The canonical name of this machine's OS (or of ``platform``, a ``sys.platform`` value)."""
    value = sys.platform if platform is None else platform
    if value.startswith("linux"):
        return "linux"
    if value == "darwin":
        return "mac"
    if value in ("win32", "cygwin"):
        return "windows"
    return "linux"  # other Unixes behave like Linux for paths and environments
