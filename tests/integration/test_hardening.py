"""What an unauthenticated peer can cost a daemon, and who can read spilled
objects: the direct transport's pre-auth limits (frame size, handshake
deadline, open connections), gRPC's token check before the body, and the
modes of spill directories and files. Real daemons, one cluster."""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
import time
import uuid

import numpy as np
import psutil
import pytest

import jray
from jray._private import config, direct
from jray._private.worker import global_state

MiB = 1024 * 1024
BIG = 200 * MiB  # what the probe streamed at a daemon before the token check
HANDSHAKE = 3.0  # JRAY_DIRECT_HANDSHAKE_SECONDS for this module's cluster

pytestmark = pytest.mark.timeout(120)


@jray.remote(num_cpus=1)
def whoami():
    return os.getpid(), global_state.worker.direct_port


@jray.remote(num_cpus=1)
def total(x):
    return int(x.sum())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head whose user-chosen spill directory does not exist yet (the
    raylet creates it), with a short handshake deadline."""
    if jray.is_initialized():
        jray.shutdown()
    spill = str(tmp_path_factory.mktemp("hardening") / "spill-here")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JRAY_DIRECT_HANDSHAKE_SECONDS", str(HANDSHAKE))
        mp.setenv("JRAY_GRPC_HANDSHAKE_SECONDS", str(HANDSHAKE))
        jray.init(num_cpus=1, object_store_memory=64 * MiB,
                  _system_config={"object_spilling_config": {"type": "filesystem",
                                                             "params": {"directory_path": spill}}})
    try:
        w = global_state.worker
        raylet = [p for p in psutil.Process().children(recursive=True)
                  if "jray._private.raylet" in " ".join(p.cmdline())]
        assert len(raylet) == 1
        assert w.raylet_direct is not None
        worker_pid, worker_port = jray.get(whoami.remote(), timeout=60)
        assert worker_port > 0
        yield {
            "raylet": (raylet[0].pid, int(w.raylet_direct.address.rpartition(":")[2])),
            "worker": (worker_pid, worker_port),
            "raylet_grpc": w.raylet_address,
            "gcs_grpc": w.gcs_address,
            "token": w.token.encode(),
            "spill": spill,
        }
    finally:
        jray.shutdown()


def _frame(kind: int, rid: int, payload: bytes) -> bytes:
    return struct.pack("<IIB", len(payload), rid, kind) + payload


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _closed(sock: socket.socket, timeout: float) -> bool:
    """True when the peer closes within ``timeout`` s without sending a byte."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def _works(info: dict) -> None:
    """The cluster goes on: a task, and an object through the store."""
    assert jray.get(whoami.remote(), timeout=60)[1] > 0
    arr = np.ones(2 * MiB, dtype=np.uint8)
    assert jray.get(total.remote(jray.put(arr)), timeout=60) == 2 * MiB


@pytest.mark.parametrize("target", ["raylet", "worker"])
def test_an_oversized_frame_before_the_token_is_dropped_unread(cluster, target):
    pid, port = cluster[target]
    before = _rss(pid)
    chunk = b"\0" * MiB
    with _connect(port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        t0 = time.monotonic()
        sent = 0
        # The header says 200 MiB; then try to stream all of it.
        try:
            s.sendall(struct.pack("<IIB", BIG, 0, direct.AUTH))
            while sent < BIG:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:  # reset / broken pipe: the daemon closed the connection
            pass
        dropped = _closed(s, 5) or sent < BIG
        took = time.monotonic() - t0
    grew = _rss(pid) - before
    print(f"{target}: closed after {took * 1000:.0f} ms, {sent >> 20} MiB accepted by the kernel, "
          f"RSS {before >> 20} -> {(before + grew) >> 20} MiB")
    assert dropped and sent < 32 * MiB, (sent, took)
    assert took < 3.0
    assert grew < 32 * MiB, grew
    # An oversized frame that is not even the token's kind: the same.
    with _connect(port) as s:
        s.sendall(struct.pack("<IIB", config.DIRECT_PREAUTH_MAX_FRAME + 1, 1, direct.PUSH) + b"\0" * 1024)
        assert _closed(s, 5)
    # The limit is on unauthenticated peers only: the real token, then a
    # frame far over 8 KiB (an unknown kind, answered with ERROR once read).
    with _connect(port) as s:
        s.sendall(_frame(direct.AUTH, 0, cluster["token"]) + _frame(99, 7, b"\0" * (4 * MiB)))
        s.settimeout(10)
        n, rid, kind = struct.unpack("<IIB", s.recv(9, socket.MSG_WAITALL))
        assert (rid, kind) == (7, direct.ERROR)
        assert b"unknown frame kind" in s.recv(n, socket.MSG_WAITALL)
    _works(cluster)


def test_a_connection_that_never_authenticates_is_closed_at_the_deadline(cluster):
    socks = []
    try:
        t0 = time.monotonic()
        for target in ("raylet", "worker"):
            _pid, port = cluster[target]
            idle = _connect(port)  # sends nothing
            partial = _connect(port)  # a token frame's header, and no body
            partial.sendall(struct.pack("<IIB", 48, 0, direct.AUTH) + b"x" * 10)
            socks += [idle, partial]
        assert not _closed(socks[0], 0.5)  # not before the deadline
        for s in socks:
            assert _closed(s, HANDSHAKE + 5)
        took = time.monotonic() - t0
        print(f"closed after {took:.2f} s (deadline {HANDSHAKE} s)")
        assert HANDSHAKE - 0.5 < took < HANDSHAKE + 3
    finally:
        for s in socks:
            s.close()
    # An authenticated connection idle past the deadline stays open.
    with _connect(cluster["raylet"][1]) as s:
        s.sendall(_frame(direct.AUTH, 0, cluster["token"]))
        assert not _closed(s, HANDSHAKE + 0.5)
        s.sendall(_frame(99, 3, b""))
        n, rid, kind = struct.unpack("<IIB", s.recv(9, socket.MSG_WAITALL))
        assert (rid, kind) == (3, direct.ERROR)
    _works(cluster)


def _eof_within(sock: socket.socket, timeout: float) -> bool:
    """True when the peer closes the connection within ``timeout`` s (what
    it sends first, e.g. HTTP/2 SETTINGS and GOAWAY, is read and dropped)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(4096) == b"":
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def test_grpc_drops_a_connection_that_never_speaks_at_the_deadline(cluster):
    """A peer that opens connections to the gRPC servers (GCS, raylet) and
    sends nothing holds each for the handshake deadline, not gRPC's 120 s."""
    socks = []
    try:
        t0 = time.monotonic()
        for addr in (cluster["gcs_grpc"], cluster["raylet_grpc"]):
            host, _, port = addr.rpartition(":")
            socks += [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
        assert not _eof_within(socks[0], 0.5)  # not before the deadline
        assert all(_eof_within(s, HANDSHAKE + 5) for s in socks)
        took = time.monotonic() - t0
        print(f"gRPC closed {len(socks)} silent connections after {took:.2f} s (deadline {HANDSHAKE} s)")
        assert HANDSHAKE - 0.5 < took < HANDSHAKE + 3
    finally:
        for s in socks:
            s.close()
    _works(cluster)  # the cluster's own channels, idle longer than that, still work


def test_unauthenticated_connections_are_capped_the_oldest_goes(cluster):
    cap = config.DIRECT_MAX_UNAUTHENTICATED
    _pid, port = cluster["raylet"]
    socks: list[socket.socket] = []
    try:
        for _ in range(cap):
            socks.append(_connect(port))
        time.sleep(0.2)  # all accepted
        assert not _closed(socks[0], 0.1)
        newest = _connect(port)
        socks.append(newest)
        assert _closed(socks[0], 2)  # the oldest made room for it
        assert not _closed(socks[1], 0.1) and not _closed(newest, 0.1)
        # One more each: each time the next oldest goes.
        for i in range(1, 4):
            socks.append(_connect(port))
            assert _closed(socks[i], 2)
        # With the cap full of idle peers, the cluster's own clients still
        # connect: a new thread's store calls open a new direct connection.
        out: list = []
        t = threading.Thread(target=lambda: out.append(jray.get(jray.put(np.full(MiB, 3, dtype=np.uint8)))))
        t.start()
        t.join(30)
        assert out and int(out[0].sum()) == 3 * MiB
        with _connect(port) as s:
            s.sendall(_frame(direct.AUTH, 0, cluster["token"]) + _frame(99, 5, b""))
            s.settimeout(10)
            assert struct.unpack("<IIB", s.recv(9, socket.MSG_WAITALL))[1:] == (5, direct.ERROR)
    finally:
        for s in socks:
            s.close()
    _works(cluster)


def test_grpc_rejects_an_unauthenticated_call_before_reading_its_body(cluster):
    """The token interceptor answers on the metadata alone: the 200 MiB
    request is never received (without that, the raylet buffered all of it,
    twice: RSS 46 -> 448 MiB)."""
    import grpc

    pid = cluster["raylet"][0]
    before = _rss(pid)
    payload = b"\0" * BIG
    with grpc.insecure_channel(cluster["raylet_grpc"], options=[
            ("grpc.max_send_message_length", config.GRPC_MAX_MESSAGE)]) as ch:
        call = ch.unary_unary("/jray.protocol.RayletService/GetNodeStats")
        t0 = time.monotonic()
        for md in (None, (("jray-token", "wrong"),)):
            with pytest.raises(grpc.RpcError) as info:
                call(payload, timeout=30, metadata=md)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        took = time.monotonic() - t0
    del payload
    grew = _rss(pid) - before
    print(f"gRPC: 2 rejected in {took:.2f} s, raylet RSS {before >> 20} -> {(before + grew) >> 20} MiB")
    assert grew < 32 * MiB, grew
    _works(cluster)


def test_spill_directory_and_files_are_private(cluster):
    spill = cluster["spill"]
    refs = [jray.put(np.full(20 * MiB, i, dtype=np.uint8)) for i in range(5)]  # 100 MiB into 64 MiB
    deadline = time.monotonic() + 10
    while not os.listdir(spill) and time.monotonic() < deadline:
        time.sleep(0.05)
    files = os.listdir(spill)
    assert files
    assert stat.S_IMODE(os.stat(spill).st_mode) == 0o700
    for f in files:
        assert stat.S_IMODE(os.stat(os.path.join(spill, f)).st_mode) == 0o600, f
    assert [int(jray.get(r, timeout=60)[0]) for r in refs] == list(range(5))  # restored as before
    del refs


def test_spill_files_in_an_existing_shared_directory(tmp_path):
    """A directory the user gave that exists keeps its mode; the files in it
    are 0600 whatever the umask, and a file or link planted under a spill
    file's name is replaced, never written through."""
    from jray._private.object_store import Arena, LocalObjectStore

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    arena = Arena.create(f"/dev/shm/jray-test-{uuid.uuid4().hex[:12]}", 4 * MiB)
    old_umask = os.umask(0)
    try:
        store = LocalObjectStore(arena, 1 * MiB, spill_dir=str(shared))
        oid = b"\x01" * 28
        os.symlink(victim, shared / oid.hex())  # planted where create_spilled will write
        path = store.create_spilled(oid, 4096)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600 and not os.path.islink(path)
        assert victim.read_bytes() == b"keep"
        store.seal(oid)
        for i in range(3):  # 3 x 512 KiB into 1 MiB: one spills
            o = bytes([i + 2]) * 28
            store.create(o, 512 * 1024)
            store.seal(o)
        spilled = [f for f in os.listdir(shared) if f != oid.hex()]
        assert spilled
        for f in spilled:
            assert stat.S_IMODE(os.stat(shared / f).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
        store.close()
        assert os.path.isdir(shared)  # not ours to remove
    finally:
        os.umask(old_umask)
        arena.close()
        arena.unlink()
