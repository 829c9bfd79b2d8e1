"""The HTTP side of `Client`: one connection to a controller, its errors translated.

A plain `http://` controller reached without a proxy is called through the lean blocking
transport (`_blocking.BlockingWire`); https, a proxy or a transport given (tests) go through
httpx, imported only then. No response models here (no pydantic): a program that only prints
what the controller answers, such as `thresher jobs`, reads JSON through a `Session` and starts
faster for it."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from thresher.client._blocking import BlockingWire, Unsent
from thresher.client._errors import raise_for, translate
from thresher.client._http1 import WireError, lean_target

if TYPE_CHECKING:
    import httpx


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


def controller_urls(url: str | Sequence[str]) -> list[str]:
    """The controller URLs a client was given: a list, or one text with URLs separated by
    commas (``THRESHER_URL=http://a:8420,http://b:8420``); each without its trailing slash."""
    given = url.split(",") if isinstance(url, str) else list(url)
    urls = [u.strip().rstrip("/") for u in given if u.strip()]
    if not urls:
        raise ValueError("no controller URL given")
    return urls


def new_request_id() -> str:
    """An id for one request, sent as X-Request-Id and logged by the controller."""
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: its status, reason and body (what the client's calls read of it)."""

    status_code: int
    reason_phrase: str
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return json.loads(self.content)


class _Unreached(Exception):
    """A call got no answer; `sent`: the request may have reached the controller."""

    def __init__(self, cause: Exception, *, sent: bool) -> None:
        super().__init__(str(cause))
        self.cause, self.sent = cause, sent


class _Httpx:
    """Calls through httpx (https, a proxy, or a transport given)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any,
        params: Mapping[str, Any] | None,
        timeout: float,
    ) -> Reply:
        import httpx

        try:
            response = self._client.request(
                method, path, json=json_body, params=params, timeout=timeout
            )
        except httpx.HTTPError as exc:
            # after these the request was surely never handled
            unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            raise _Unreached(exc, sent=not unsent) from exc
        return Reply(response.status_code, response.reason_phrase, response.content)

    def close(self) -> None:
        self._client.close()


class _Lean:
    """Calls through the lean blocking transport (plain http, no proxy)."""

    def __init__(self, wire: BlockingWire) -> None:
        self._wire = wire

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any,
        params: Mapping[str, Any] | None,
        timeout: float,
    ) -> Reply:
        try:
            answer = self._wire.request(
                method, path, json_body=json_body, params=params, timeout=timeout
            )
        except (OSError, WireError) as exc:
            raise _Unreached(exc, sent=not isinstance(exc, Unsent)) from exc
        return Reply(answer.status, answer.reason, answer.content)

    def close(self) -> None:
        self._wire.close()


class Session:
    """A connection to a Thresher controller that answers JSON values."""

    def __init__(
        self,
        url: str | Sequence[str],
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        ca_file: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """`url`: one controller, or several (a list, or separated by commas) behind which one
        farm's controllers serve the same database; a request that cannot reach one goes on to
        the next. `request_id` is sent with every request (X-Request-Id), so the controller's
        log lines of one command can be found together."""
        self.urls = controller_urls(url)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._headers["X-Request-Id"] = request_id or new_request_id()
        self._timeout, self._transport, self._ca_file = timeout, transport, ca_file
        self._at = 0
        self.url = self.urls[0]
        self._http = self._open(self.url)

    def _open(self, url: str) -> _Httpx | _Lean:
        target = lean_target(url) if self._transport is None else None
        if target is not None:
            return _Lean(BlockingWire(url, target, self._headers))
        import httpx

        return _Httpx(
            httpx.Client(
                base_url=url,
                headers=self._headers,
                timeout=self._timeout,
                transport=self._transport,
                verify=tls_verification(url, ca_file=self._ca_file),
            )
        )

    def _move_on(self, exc: _Unreached, method: str, tried: int) -> bool:
        """After a transport error: switch to the next controller and say whether to send the
        request there (there is one not yet tried, and the request was never handled or is
        a read)."""
        if tried >= len(self.urls) or (exc.sent and method != "GET"):
            return False
        self._http.close()
        self._at = (self._at + 1) % len(self.urls)
        self.url = self.urls[self._at]
        self._http = self._open(self.url)
        return True

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        tried = 1
        while True:
            try:
                response = self._http.request(
                    method,
                    path,
                    json_body=json,
                    params=params,
                    timeout=self._timeout if timeout is None else timeout,
                )
            except _Unreached as exc:
                if self._move_on(exc, method, tried):
                    tried += 1
                    continue
                raise translate(exc.cause) from exc.cause
            raise_for(response)
            return response

    def get_json(self, path: str, **params: Any) -> Any:
        """The JSON the controller answers to `GET path` (None-valued params left out)."""
        query = {k: v for k, v in params.items() if v is not None}
        return self._call("GET", path, params=query).json()
