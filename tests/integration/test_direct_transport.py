"""The direct transport (jray._private.direct): tasks and actor calls pushed
over framed protobuf on plain TCP, its token check, and the gRPC path that
``JRAY_DIRECT_TRANSPORT=0`` falls back to."""

from __future__ import annotations

import os
import socket
import struct

import pytest

import jray
from jray import exceptions
from jray._private import direct
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.worker import global_state


@jray.remote
def square(x):
    return x * x


@jray.remote
def worker_direct_port():
    return global_state.worker.direct_port


@jray.remote
def size_of(b):
    return len(b)


@jray.remote
def make_big(mb):
    return b"z" * (mb << 20)


@jray.remote
def fails():
    raise ValueError("boom")


@jray.remote(num_cpus=0)
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self, by=1):
        self.n += by
        return self.n

    def direct_port(self):
        return global_state.worker.direct_port

    def pid(self):
        return os.getpid()


@pytest.fixture(params=["1", "0"], ids=["direct", "grpc"])
def cluster(request, monkeypatch):
    monkeypatch.setenv("JRAY_DIRECT_TRANSPORT", request.param)
    if jray.is_initialized():
        jray.shutdown()
    jray.init(num_cpus=2, object_store_memory=64 * 1024 * 1024)
    yield request.param == "1"
    jray.shutdown()


def test_tasks_and_actor_calls_on_either_transport(cluster):
    direct_on = cluster
    port = jray.get(worker_direct_port.remote())
    assert (port > 0) == direct_on
    # single pushes, batches (many in flight), errors, ordered actor calls
    assert jray.get(square.remote(7)) == 49
    assert jray.get([square.remote(i) for i in range(300)]) == [i * i for i in range(300)]
    with pytest.raises(exceptions.RayTaskError, match="boom"):
        jray.get(fails.remote())
    c = Counter.remote()
    assert jray.get(c.incr.remote()) == 1
    assert jray.get([c.incr.remote() for _ in range(500)]) == list(range(2, 502))
    assert (jray.get(c.direct_port.remote()) > 0) == direct_on
    # the driver pushed over the transport it was offered
    assert ("direct" in global_state.worker.pushes.transports()) == direct_on
    # store calls (create, get) from the user's thread: direct to the raylet, or gRPC
    assert (global_state.worker.raylet_direct is not None) == direct_on
    big = bytes(range(256)) * 8192  # 2 MB: in the store, not inline
    ref = jray.put(big)
    assert jray.get(ref) == big
    assert jray.get(size_of.remote(ref)) == len(big)
    assert jray.get(make_big.remote(3)) == b"z" * (3 << 20)


def test_actor_restart_over_a_new_connection(cluster):
    c = Counter.options(max_restarts=1, max_task_retries=1).remote()
    pid = jray.get(c.pid.remote())
    os.kill(pid, 9)
    # the call in flight (or the next) reaches the restarted actor
    assert jray.get(c.incr.remote(5), timeout=30) == 5
    assert jray.get(c.pid.remote()) != pid


def _frame(kind: int, rid: int, payload: bytes) -> bytes:
    return struct.pack("<IIB", len(payload), rid, kind) + payload


def _closed_without_answer(sock: socket.socket) -> bool:
    """True when the peer closes the connection without sending a byte."""
    sock.settimeout(10)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("cluster", ["1"], indirect=True, ids=["direct"])
def test_connections_without_the_token_are_closed_and_the_worker_goes_on(cluster):
    c = Counter.remote()
    port = jray.get(c.direct_port.remote())
    token = global_state.worker.token.encode()
    spec = cpb.TaskSpec(task_id=os.urandom(24), type=cpb.ACTOR_TASK, method_name="incr", num_returns=1)
    push = _frame(direct.PUSH, 1, wpb.PushTaskRequest(spec=spec).SerializeToString())

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # no AUTH frame at all
        s.sendall(push)
        assert _closed_without_answer(s)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # a wrong token
        s.sendall(_frame(direct.AUTH, 0, b"x" * len(token)) + push)
        assert _closed_without_answer(s)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # right token, absurd frame length
        s.sendall(_frame(direct.AUTH, 0, token) + struct.pack("<IIB", 0xFFFFFFF0, 2, direct.PUSH))
        assert _closed_without_answer(s)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # right token, unknown kind
        s.sendall(_frame(direct.AUTH, 0, token) + _frame(99, 3, b""))
        s.settimeout(10)
        head = s.recv(9)
        n, rid, kind = struct.unpack("<IIB", head)
        assert (rid, kind) == (3, direct.ERROR)
        assert b"unknown frame kind" in s.recv(n)
    # none of it reached the actor, which goes on as before
    assert jray.get(c.incr.remote()) == 1
    assert jray.get(square.remote(3)) == 9
