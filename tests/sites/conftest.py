"""The served-controller fixtures of tests/controller (`serve`, `served`, `admin`), here too."""

from __future__ import annotations

from tests.controller.conftest import Serve, admin, serve, served

__all__ = ["Serve", "admin", "serve", "served"]
