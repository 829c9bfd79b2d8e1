"""Thresher: an open-source render farm manager."""

from thresher.client import Client, ThresherError

__all__ = ["Client", "ThresherError", "__version__"]
__version__ = "0.1.0"
