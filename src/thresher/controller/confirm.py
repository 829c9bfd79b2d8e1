"""The last guard of a request whose caller came from the known tokens (`routes.deps`): if
no use case confirmed it (`Farm.call`, which looks the token up in the same hand-off), it is
looked up here, before the first byte of the answer leaves. So a route that never calls the
farm (one answering from memory, the event stream) cannot serve a token revoked a moment ago:
the answer becomes 401 (or 403, when the token's role no longer allows the route)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thresher.controller import policy
from thresher.controller.errors import Unauthorized
from thresher.controller.farm import UNCONFIRMED, Farm, Unconfirmed
from thresher.core.errors import Forbidden


class ConfirmCaller:
    """ASGI middleware: confirm a still unconfirmed caller before the answer starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False

        async def confirmed_send(message: Message) -> None:
            nonlocal refused
            if refused:
                return
            pending = UNCONFIRMED.get()
            if message["type"] == "http.response.start" and pending is not None:
                UNCONFIRMED.set(None)
                answer = await refusal(scope["app"].state.farm, pending)
                if answer is not None:
                    refused = True
                    for part in answer:
                        await send(part)
                    return
            await send(message)

        await self.app(scope, receive, confirmed_send)


async def refusal(farm: Farm, pending: Unconfirmed) -> list[Message] | None:
    """The 401/403 answer for a caller that no longer passes; None when it passes."""
    try:
        fresh = await farm.thread.run(farm.access.confirm, pending.caller)
        if fresh is not pending.caller:
            policy.check(fresh, pending.method, pending.route)
        return None
    except Unauthorized as exc:
        status, code, message = 401, "unauthorized", exc.message
    except Forbidden as exc:
        status, code, message = 403, "forbidden", exc.message
    body = json.dumps({"error": code, "message": message, "field": "Authorization"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]
