"""The HTTP side of `Client`: one httpx connection to a controller, its errors translated.

No response models here (no pydantic): a program that only prints what the controller answers,
such as `thresher jobs`, reads JSON through a `Session` and starts faster for it."""

from __future__ import annotations

import ssl
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from thresher.client._errors import raise_for, translate


def tls_verification(url: str, *, ca_file: str | None = None) -> ssl.SSLContext | bool:
    """What a client of `url` verifies TLS certificates with: `ca_file` (a controller with its
    own certificate authority, docs/security.md) or else the default CA bundle, for https.

    A controller at an http:// URL is never reached over TLS, and loading the CA bundle costs
    about a sixth of the time a CLI command takes to start; such a client gets a context that
    trusts no certificate instead, so that any TLS it might still attempt (through an https://
    proxy) fails rather than goes unchecked."""
    if urlsplit(url).scheme == "http":
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return True


class Session:
    """A connection to a Thresher controller that answers JSON values."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        ca_file: str | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=tls_verification(self.url, ca_file=ca_file),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise translate(exc) from exc
        raise_for(response)
        return response

    def get_json(self, path: str, **params: Any) -> Any:
        """The JSON the controller answers to `GET path` (None-valued params left out)."""
        query = {k: v for k, v in params.items() if v is not None}
        return self._call("GET", path, params=query).json()
