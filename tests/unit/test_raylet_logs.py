"""The raylet's log reading (``jray/_private/raylet/logs.py``) without a
cluster: names confined to the logs directory, tails of N lines, reads from
an offset, the worker <-> file map; and the host sampler's cache."""

from __future__ import annotations

import os

import pytest

from jray._private.raylet import host_stats
from jray._private.raylet.logs import LogDir, LogError, WorkerLogs, check_name


@pytest.fixture
def logs(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "worker-1.log").write_bytes(b"".join(b"line %d\n" % i for i in range(10)))
    (d / "partial.log").write_bytes(b"a\nb\nc")  # no final newline
    (d / "empty.log").write_bytes(b"")
    (tmp_path / "secret.txt").write_text("not a log")
    os.symlink(tmp_path / "secret.txt", d / "escape.log")
    (d / "sub").mkdir()
    (d / "sub" / "inner.log").write_text("inside\n")
    return LogDir(str(d))


@pytest.mark.parametrize("name, why", [
    ("../secret.txt", "'..' is not allowed"),
    ("sub/../../secret.txt", "'..' is not allowed"),
    ("/etc/passwd", "an absolute path"),
    ("", "no log file named"),
    ("x\x00y", "NUL"),
])
def test_bad_names_are_refused_before_any_file_is_opened(logs, name, why):
    with pytest.raises(LogError, match=why) as e:
        logs.read(name)
    assert not e.value.not_found and isinstance(e.value, ValueError)
    with pytest.raises(ValueError):
        check_name(name)


def test_a_symlink_out_of_the_directory_is_refused(logs):
    with pytest.raises(LogError, match="resolves outside"):
        logs.read("escape.log")


def test_an_unknown_file_is_not_found(logs):
    with pytest.raises(LogError, match="no log file 'nope.log'") as e:
        logs.read("nope.log")
    assert e.value.not_found


def test_tail_offset_and_chunks(logs):
    data, end, size = logs.read("worker-1.log", tail=3)
    assert data == b"line 7\nline 8\nline 9\n" and end == size
    assert logs.read("worker-1.log", tail=0)[0] == b""
    assert logs.read("worker-1.log", tail=100)[0].count(b"\n") == 10
    assert logs.read("worker-1.log")[0].startswith(b"line 0\n")  # tail < 0: from the start
    assert logs.read("partial.log", tail=2)[0] == b"b\nc"  # a last line without its newline counts
    assert logs.read("partial.log", tail=1)[0] == b"c"
    assert logs.read("empty.log", tail=5) == (b"", 0, 0)
    first, end, size = logs.read("worker-1.log", offset=0, max_bytes=10)
    assert first == b"line 0\nlin" and end == 10 and size == 70
    rest, end2, _ = logs.read("worker-1.log", offset=end)
    assert first + rest == logs.read("worker-1.log")[0] and end2 == size
    assert logs.read("worker-1.log", offset=500)[0] == b""  # past the end: nothing
    assert logs.read("sub/inner.log")[0] == b"inside\n"


def test_list_with_glob(logs):
    names = [n for n, _, _ in logs.list()]
    assert "worker-1.log" in names and "sub/inner.log" in names
    assert [n for n, _, _ in logs.list("worker-*")] == ["worker-1.log"]
    assert [n for n, _, _ in logs.list("inner.log")] == ["sub/inner.log"]


def test_worker_logs_map_pid_and_id_and_forget_the_oldest():
    w = WorkerLogs(limit=2)
    w.started("/x/logs/worker-1.log", 11)
    w.registered(11, b"id-1")
    assert w.find(pid=11).filename == "worker-1.log" and w.find(worker_id=b"id-1").pid == 11
    w.exited(11)
    assert not w.find(pid=11).alive
    w.started("/x/logs/worker-2.log", 12)
    w.started("/x/logs/worker-3.log", 11)  # pid 11 reused
    assert w.find(pid=11).filename == "worker-3.log"
    assert w.find(worker_id=b"id-1") is None  # the oldest file was forgotten
    assert w.find(pid=99) is None and w.find() is None


def test_host_stats_sample_at_most_once_per_interval():
    hs = host_stats.HostStats(min_interval=3600)
    first = hs.sample([os.getpid()])
    assert 0 < first.memory_used <= first.memory_total
    assert first.procs[os.getpid()].rss > 10 * 2**20
    assert hs.sample([os.getpid()]) is first  # cached
    assert host_stats.HostStats(min_interval=0).sample([os.getpid(), 2**22 + 7]).procs.keys() == {os.getpid()}
