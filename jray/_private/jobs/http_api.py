"""The jobs REST API (Ray's paths) on a small asyncio HTTP/1.1 server.

Stdlib only: one request per connection (``Connection: close``), JSON in
and out, bodies up to 1 MiB. Every request must carry the cluster token,
``Authorization: Bearer <token>`` (or ``X-Jray-Token: <token>``); without it
the answer is 401 and nothing else is looked at.

    GET    /api/version                       the agent's version and its GCS address
    POST   /api/jobs/                         submit: {"entrypoint": ..., "submission_id": ..., ...}
    GET    /api/jobs/                         every job's details
    GET    /api/jobs/{id}                     one job's details (404 if unknown)
    GET    /api/jobs/{id}/logs                {"logs": the whole log}
    GET    /api/jobs/{id}/logs/tail?offset=N&wait=S
                                              new log text from offset N (long poll up to S s):
                                              {"logs", "offset", "terminal", "status"}
    POST   /api/jobs/{id}/stop                {"stopped": bool}
    DELETE /api/jobs/{id}                     {"deleted": bool} (only an ended job)

With a dashboard (``jray.dashboard.pages``, given by the agent's entry
point ``jray.dashboard.agent``), the paths it claims (``/``, ``/login``,
``/views/*``, ``/api/views/*``, ``/jobs/*``) are its pages, and its login
cookie is accepted in place of the token header.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jray._private.jobs import common as C

log = logging.getLogger("jray.jobs.http")
MAX_BODY = 1 << 20
_REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Payload Too Large", 500: "Internal Server Error"}


@dataclass
class Response:
    """A non-JSON answer (the dashboard's pages, redirects)."""

    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[str, str, dict[str, list[str]], Any], Awaitable[Any]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    line = await reader.readline()
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, _version = parts
    headers: dict[str, str] = {}
    for _ in range(100):
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    else:
        raise HttpError(400, "too many headers")
    body = b""
    n = int(headers.get("content-length", "0") or 0)
    if n > MAX_BODY:
        raise HttpError(413, f"request body over {MAX_BODY} bytes")
    if n:
        body = await reader.readexactly(n)
    return method.upper(), target, headers, body


def _token_of(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("x-jray-token", "")


class JobsHttpServer:
    def __init__(self, manager: Any, token: str, info: dict[str, Any], dashboard: Any = None) -> None:
        """``dashboard``: an object with ``handles(method, path)``,
        ``authorized(headers)`` and ``async route(method, path, authorized,
        form)`` (``jray.dashboard.pages.Dashboard``), or None."""
        self.manager, self.token, self.info = manager, token, info
        self.server: asyncio.Server | None = None
        self.dashboard = dashboard

    async def start(self, host: str, port: int) -> int:
        from jray._private import tls

        cfg = tls.current()  # a cluster with TLS: the jobs API is HTTPS, mutual, as every other port
        extra: dict[str, Any] = {} if cfg is None else {"ssl": tls.server_context(cfg), "ssl_handshake_timeout": 5.0}
        self.server = await asyncio.start_server(self._serve, host, port, reuse_address=True, **extra)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, payload = 200, None
        try:
            method, target, headers, body = await asyncio.wait_for(_read_request(reader), 30)
            url = urllib.parse.urlsplit(target)
            query = urllib.parse.parse_qs(url.query)
            ok = bool(self.token) and hmac.compare_digest(_token_of(headers).encode(), self.token.encode())
            if self.dashboard is not None:
                ok = ok or self.dashboard.authorized(headers)
                if self.dashboard.handles(method, url.path):
                    # a GET's query (the logs page's selection), a POST's form body (the login)
                    form = dict(query) if method == "GET" else urllib.parse.parse_qs(body.decode("utf-8", "replace")) \
                        if "form-urlencoded" in headers.get("content-type", "") else {}
                    payload = await self.dashboard.route(method, url.path, ok, form)
                    await self._write(writer, 200, payload)
                    return
            if not ok:
                raise HttpError(401, "missing or wrong cluster token (send 'Authorization: Bearer <JRAY_TOKEN>')")
            data = None
            if body:
                try:
                    data = json.loads(body)
                except ValueError:
                    raise HttpError(400, "the request body is not JSON") from None
            payload = await self.route(method, url.path, query, data)
        except HttpError as e:
            status, payload = e.status, {"error": str(e)}
        except C.NotFound as e:
            status, payload = 404, {"error": str(e)}
        except C.BadRequest as e:
            status, payload = 400, {"error": str(e)}
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except Exception as e:  # noqa: BLE001 - a bug answers 500, the server goes on
            log.exception("jobs API")
            status, payload = 500, {"error": f"{type(e).__name__}: {e}"}
        await self._write(writer, status, payload)

    async def _write(self, writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
        extra = ""
        if isinstance(payload, Response):
            status, out, ctype = payload.status, payload.body, payload.content_type
            extra = "".join(f"{k}: {v}\r\n" for k, v in payload.headers.items())
        else:
            out, ctype = json.dumps(payload).encode(), "application/json"
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n{extra}"
                f"Content-Length: {len(out)}\r\nConnection: close\r\n\r\n").encode()
        try:
            writer.write(head + out)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def route(self, method: str, path: str, query: dict[str, list[str]], data: Any) -> Any:
        m = self.manager
        parts = [p for p in path.split("/") if p]
        if parts == ["api", "version"] and method == "GET":
            return self.info
        if parts[:2] != ["api", "jobs"]:
            raise HttpError(404, f"no such path: {path}")
        rest = [urllib.parse.unquote(p) for p in parts[2:]]
        if not rest:
            if method == "POST":
                return await m.submit(data)
            if method == "GET":
                return await m.list_jobs()
            raise HttpError(405, f"{method} {path}")
        sid = rest[0]
        if len(rest) == 1:
            if method == "GET":
                return await m.info(sid)
            if method == "DELETE":
                return {"deleted": await m.delete(sid)}
            raise HttpError(405, f"{method} {path}")
        if rest[1:] == ["stop"] and method == "POST":
            return {"stopped": await m.stop(sid)}
        if rest[1:] == ["logs"] and method == "GET":
            return {"logs": m.logs_text(sid)}
        if rest[1:] == ["logs", "tail"] and method == "GET":
            try:
                offset = int(query.get("offset", ["0"])[0])
                wait = float(query.get("wait", ["0"])[0])
            except ValueError:
                raise HttpError(400, "offset and wait must be numbers") from None
            return await m.tail(sid, offset, wait)
        raise HttpError(404, f"no such path: {method} {path}")
