"""The public Python API of Thresher: `Client` for people, `AgentClient` for workers."""

from thresher.client._agent import AgentClient
from thresher.client._client import Client
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

__all__ = [
    "APIError",
    "AgentClient",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "StaleAttempt",
    "ThresherError",
    "TransportError",
    "Unauthorized",
]
