"""Who may look: the token gate, and the loopback-only gate of a server without a token.

Both are plain ASGI middleware, so they hold wherever the app is mounted.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import urllib.parse

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LoopbackHostsOnly", "TokenGate", "check_token", "is_loopback"]

#: Where a token may come from: ``Authorization: Bearer TOKEN``, this header, or ``?token=``.
TOKEN_HEADER = "x-camerapump-token"  # noqa: S105 - a name, not a secret
TOKEN_PARAM = "token"  # noqa: S105


def check_token(token: str) -> str:
    """Return ``token`` if it can be sent in a header and a URL, else raise ValueError."""
    if not isinstance(token, str):
        raise TypeError(f"token must be a string, not {type(token).__name__}")
    if not token or not all(0x21 <= ord(c) <= 0x7E for c in token):
        raise ValueError(
            "a token is one or more visible ASCII characters (no spaces), as headers carry them"
        )
    return token


def is_loopback(host: str) -> bool:
    """True for a name or address of this machine only: ``localhost``, 127.0.0.0/8, ``::1``."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _refuse(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class TokenGate:
    """Let a request through only with the token; 401 otherwise.

    The token may come as ``Authorization: Bearer TOKEN``, as the header
    ``X-Camerapump-Token: TOKEN`` or as the query parameter ``?token=TOKEN``
    (what a browser's ``<img>`` and ``EventSource`` can send).  Every candidate
    is compared in constant time.

    Args:
        app: The application behind the gate.
        token: The token.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = check_token(token).encode()

    def _candidates(self, scope: Scope) -> list[bytes]:
        found: list[bytes] = []
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    found.append(credentials.strip())
            elif name == TOKEN_HEADER.encode():
                found.append(value.strip())
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            if name == TOKEN_PARAM:
                found.append(value.encode("utf-8", "replace"))
        return found

    def allows(self, scope: Scope) -> bool:
        """True when the request carries the token."""
        # No short cut on the first match: every candidate costs the same.
        results = [hmac.compare_digest(c, self._token) for c in self._candidates(scope)]
        return any(results)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allows(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _refuse(
            send,
            401,
            "a token is needed: Authorization: Bearer TOKEN, X-Camerapump-Token or ?token=",
            [(b"www-authenticate", b'Bearer realm="camerapump"')],
        )


class LoopbackHostsOnly:
    """Answer only requests addressed to this machine by name (``Host: 127.0.0.1:8080``).

    A server on 127.0.0.1 without a token is reachable by the browsers of this
    machine only, but a web page elsewhere can point a name of its own at
    127.0.0.1 (DNS rebinding) and read the cameras through the browser; its
    requests carry that other name in ``Host``, and get 403 here.

    Args:
        app: The application behind the gate.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def _host(scope: Scope) -> str:
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = bytes(value).decode("latin-1")
                if host.startswith("["):
                    return host[1:].partition("]")[0]
                return host.rpartition(":")[0] if ":" in host else host
        return ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_loopback(self._host(scope)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _refuse(send, 403, "this server answers requests to 127.0.0.1 or localhost only", [])
