"""Thresher: an open-source render farm manager.

`Client` and `ThresherError` are imported on first use, so that importing any `thresher.*` module
(the CLI, the schemas, the core) does not import the client with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thresher.client import Client, ThresherError

__all__ = ["Client", "ThresherError", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Client", "ThresherError"):
        import thresher.client

        return getattr(thresher.client, name)
    raise AttributeError(f"module 'thresher' has no attribute {name!r}")
