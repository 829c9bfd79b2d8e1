"""The public Python API of Thresher: `Client` for people, `AgentClient` for workers, and
`Session`, the JSON-only part of `Client` (no response models: it starts faster).

The error tree is imported at once (it needs only httpx). `Client` (the response models, pydantic)
and `AgentClient` (asyncio and the worker's lean HTTP/1.1 transport) are imported on first use,
so that a program which only names the errors, such as `thresher --help`, pays for neither."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from thresher.client._errors import (
    APIError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    StaleAttempt,
    ThresherError,
    TransportError,
    Unauthorized,
)

if TYPE_CHECKING:
    from thresher.client._agent import AgentClient
    from thresher.client._client import Client
    from thresher.client._session import Session

__all__ = [
    "APIError",
    "AgentClient",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Session",
    "StaleAttempt",
    "ThresherError",
    "TransportError",
    "Unauthorized",
]

_ON_FIRST_USE = {
    "AgentClient": "thresher.client._agent",
    "Client": "thresher.client._client",
    "Session": "thresher.client._session",
}


def __getattr__(name: str) -> Any:
    if name in _ON_FIRST_USE:
        value = getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
        globals()[name] = value  # later look-ups find it without coming here
        return value
    raise AttributeError(f"module 'thresher.client' has no attribute {name!r}")
