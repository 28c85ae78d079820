"""A node's metrics endpoint (``jray._private.metrics.serve``): Prometheus's
text format on GET, served from the raylet's loop, plain HTTP or, with TLS
on, HTTPS that requires the cluster's client certificate."""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from jray._private import metrics, tls
from jray._private.protocol import raylet_pb2 as rpb


class Served:
    """``serve`` running on a loop of its own thread."""

    def __init__(self) -> None:
        self.node = metrics.NodeMetrics("127.0.0.1")
        self.node.report(b"w1", [rpb.MetricPoint(name="requests", kind="counter", description="calls",
                                                 tags={"route": "/a"}, value=3.0)])
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server, self.port = asyncio.run_coroutine_threadsafe(
            metrics.serve(self.node, "127.0.0.1", 0), self.loop).result(10)

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.close()


def _request(port: int, method: str = "GET", context: ssl.SSLContext | None = None) -> tuple[int, str, Any]:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context) if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    try:
        conn.request(method, "/metrics")
        r = conn.getresponse()
        return r.status, r.read().decode(), r.headers
    finally:
        conn.close()


def test_get_answers_prometheus_text_and_other_methods_are_refused(served: Served) -> None:
    status, body, headers = _request(served.port)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'ray_requests_total{NodeAddress="127.0.0.1",route="/a"} 3.0' in body
    status, body, _ = _request(served.port, "HEAD")
    assert status == 200 and body == ""
    status, _, _ = _request(served.port, "POST")
    assert status == 405
    # A client that connects and says nothing, or garbage, does not stop the next scrape.
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as idle, \
            socket.create_connection(("127.0.0.1", served.port), timeout=5) as junk:
        junk.sendall(b"\x00\xff garbage without an end of headers")
        junk.shutdown(socket.SHUT_WR)
        assert _request(served.port)[0] == 200
        idle.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        assert idle.recv(12) == b"HTTP/1.1 200"


def test_with_tls_on_it_is_https_and_wants_the_cluster_s_client_certificate(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tls_dir = tls.generate(str(tmp_path / "cluster"))
    monkeypatch.setenv("JRAY_TLS_DIR", tls_dir)
    cfg = tls.current()
    assert cfg is not None
    s = Served()
    try:
        status, body, _ = _request(s.port, context=tls.https_context(cfg))
        assert status == 200 and "ray_requests_total" in body
        anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        anonymous.load_verify_locations(cfg.ca_cert)
        anonymous.check_hostname = False
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            _request(s.port, context=anonymous)  # no client certificate: refused
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            _request(s.port)  # plain HTTP is not answered
        assert _request(s.port, context=tls.https_context(cfg))[0] == 200  # still serving
    finally:
        s.close()
