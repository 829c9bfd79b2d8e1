"""Helpers shipped for tests (Thresher's own and users'): a controller served in a thread."""

from thresher.testing.serve import ServedController, serve_in_thread

__all__ = ["ServedController", "serve_in_thread"]
