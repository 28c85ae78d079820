"""Remote debugging (``jray.util.rpdb``, ``jray debug``, ``%jray debug``) on
a real cluster: ``breakpoint()`` in a task pauses it until pdb attaches over
the network, the debugger opens in a driver whose ``get`` waits on the work
(a nested task's too), post-mortem on the frames of a task that raised, the
token check, cancel of a paused task, and the CLI from another process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import jray
from jray.util import rpdb


@jray.remote
def pauses(x: int) -> int:
    doubled = x * 2
    breakpoint()
    doubled += 1
    return doubled


BP_LINE = next(i for i, line in enumerate(open(__file__), 1) if line.strip() == "breakpoint()")


@jray.remote
def fails(n: int) -> None:
    secret = n * 7  # noqa: F841 - read through the debugger
    raise ValueError(f"bad input {n}")


@jray.remote
def ident(x: int) -> int:
    return x


def _paused(timeout: float = 30, n: int = 1) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = rpdb.list_breakpoints()
        if len(rows) >= n:
            return rows
        assert time.monotonic() < deadline, f"no task paused at a breakpoint within {timeout} s"
        time.sleep(0.05)


def _cancel_and_see_it_unlisted(ref, why: str) -> None:
    """Cancel a paused task: its get raises TaskCancelledError and, within
    10 s, no pause is listed any more (``why`` otherwise)."""
    jray.cancel(ref)
    with pytest.raises(jray.exceptions.TaskCancelledError):
        jray.get(ref, timeout=30)
    deadline = time.monotonic() + 10
    while rpdb.list_breakpoints():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def _env(jray_cluster) -> dict[str, str]:
    from jray._private import node as _node

    info = jray_cluster.address_info
    return dict(os.environ, JRAY_ADDRESS=info["gcs_address"], JRAY_TOKEN=_node.STARTED_HERE[info["gcs_address"]])


def test_breakpoint_pauses_until_attached_and_steps(jray_cluster) -> None:
    ref = pauses.remote(20)
    rows = _paused()
    row = rows[0]
    assert row["function"] == "pauses" and row["where"].endswith(f"{os.path.basename(__file__)}:{BP_LINE}")
    assert row["task_id"] == ref.task_id().hex()
    ready, _ = jray.wait([ref], timeout=0.5)
    assert not ready, "the task went on without a debugger"
    text = "".join(rpdb.attach(row, commands=["p doubled", "next", "p x, doubled", "continue"]))
    assert "(Pdb) p doubled\n40\n" in text
    assert "(20, 41)" in text, text
    assert jray.get(ref, timeout=30) == 41
    assert rpdb.list_breakpoints() == [], "an attached session stays listed"
    # The session is gone: a second attach says so instead of hanging.
    with pytest.raises(rpdb.DebuggerError, match="no longer waiting"):
        rpdb.attach(row, commands=["c"])


def test_quit_fails_the_task_with_bdbquit(jray_cluster) -> None:
    ref = pauses.remote(1)
    row = _paused()[0]
    rpdb.attach(row, commands=["q"])
    with pytest.raises(jray.exceptions.RayTaskError, match="BdbQuit"):
        jray.get(ref, timeout=30)
    assert jray.get(ident.remote(3), timeout=30) == 3  # the cluster works on


def test_debugger_opens_in_a_waiting_driver_for_nested_tasks(jray_cluster, tmp_path) -> None:
    """A script whose main thread waits in get: each task that pauses (one
    of them nested in another task) gets its pdb there, reading the
    script's stdin, and the get then returns the results."""
    script = tmp_path / "drive.py"
    script.write_text(textwrap.dedent("""
        import jray
        jray.init(address="auto")

        @jray.remote
        def leaf(x):
            local_value = x * 3
            breakpoint()
            return local_value

        @jray.remote
        def parent():
            return jray.get(leaf.remote(5)) + 1000

        print("RESULT", jray.get([leaf.remote(1), parent.remote()], timeout=120))
        jray.shutdown()
    """))
    out = subprocess.run([sys.executable, str(script)], input="p local_value\nc\np local_value\nc\n", text=True,
                         capture_output=True, timeout=120, env=dict(_env(jray_cluster), JRAY_DEBUG_IN_DRIVER="1"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "RESULT [3, 1015]" in out.stdout, out.stdout
    assert out.stdout.count("jray: debugging leaf") == 2, out.stdout
    # each session printed its own frame's value (the order the tasks paused in is not fixed)
    # (the other task's "paused" line may come in the middle of a session: leave task output out)
    pdb_text = re.sub(r"\(leaf pid=\d+\) [^\n]*\n", "", out.stdout)
    assert "(Pdb) 3\n" in pdb_text and "(Pdb) 15\n" in pdb_text, out.stdout


def test_post_mortem_on_the_failed_tasks_frames(jray_cluster) -> None:
    with pytest.raises(ValueError) as info:
        jray.get(fails.remote(6), timeout=30)
    err = info.value
    assert isinstance(err, jray.exceptions.RayTaskError)
    assert err.task_id and err.debug_address
    text = "".join(rpdb.post_mortem(err, commands=["p secret", "p n", "where", "q"]))
    assert "post-mortem of fails(): ValueError: bad input 6" in text
    assert "(Pdb) p secret\n42\n" in text and "(Pdb) p n\n6\n" in text
    assert "in fails" in text or "fails()" in text
    # Again: the state stays for a while; and the worker is fine.
    text = "".join(rpdb.post_mortem(err, commands=["p secret * 2"]))
    assert "84" in text
    assert jray.get(ident.remote(1), timeout=30) == 1


def test_post_mortem_can_be_turned_off(jray_cluster) -> None:
    @jray.remote(runtime_env={"env_vars": {"JRAY_DEBUG_POST_MORTEM": "0"}})
    def fails_quietly() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError) as info:
        jray.get(fails_quietly.remote(), timeout=60)
    assert info.value.debug_address == ""  # type: ignore[attr-defined]
    with pytest.raises(rpdb.DebuggerError, match="JRAY_DEBUG_POST_MORTEM=0"):
        rpdb.post_mortem(info.value, commands=["q"])


def test_wrong_token_is_refused(jray_cluster) -> None:
    ref = pauses.remote(2)
    row = _paused()[0]
    host, _, port = row["address"].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall((json.dumps({"token": "not-the-token", "session": row["session"]}) + "\n").encode())
        s.settimeout(10)
        reply = s.recv(4096).decode()
    assert "refused" in reply
    with pytest.raises(rpdb.DebuggerError, match="refused"):
        rpdb.attach(row, token="wrong", commands=["c"])
    # Still paused, still attachable with the right token.
    assert [r["session"] for r in rpdb.list_breakpoints()] == [row["session"]]
    rpdb.attach(row, commands=["c"])
    assert jray.get(ref, timeout=30) == 5


def test_cancel_a_paused_task(jray_cluster) -> None:
    ref = pauses.remote(3)
    _paused()
    _cancel_and_see_it_unlisted(ref, "a cancelled task stays listed as paused")


@jray.remote
def pauses_with_a_slow_listing(x: int) -> int:
    """``breakpoint()`` whose listing entry reaches the GCS at once but
    whose reply comes back 3 s late: a cancel in that window lands while
    the worker is still recording the pause."""
    from jray._private.worker import global_state

    gcs = global_state.worker.gcs
    real = gcs.KVPut

    async def late_reply(*args, **kwargs):
        reply = await real(*args, **kwargs)
        await asyncio.sleep(3)
        return reply

    gcs.KVPut = late_reply
    try:
        breakpoint()
    finally:
        gcs.KVPut = real
    return x


def test_cancel_while_the_pause_is_being_recorded(jray_cluster) -> None:
    """A cancel that lands before the worker has heard back from the GCS
    leaves no listed pause behind, and no session that accepts a debugger
    nobody serves (``jray debug`` would hang on it)."""
    ref = pauses_with_a_slow_listing.remote(3)
    row = _paused()[0]
    _cancel_and_see_it_unlisted(ref, "a task cancelled while recording its pause stays listed as paused")
    with pytest.raises(rpdb.DebuggerError, match="no longer waiting"):
        rpdb.attach(row, commands=["c"])
    assert jray.get(ident.remote(4), timeout=30) == 4


def test_cli_lists_and_attaches_from_another_process(jray_cluster) -> None:
    env = _env(jray_cluster)
    ref = pauses.remote(50)
    _paused()
    listed = subprocess.run([sys.executable, "-m", "jray.scripts", "debug", "--list"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "pauses" in listed.stdout and f"test_debugger.py:{BP_LINE}" in listed.stdout
    out = subprocess.run([sys.executable, "-m", "jray.scripts", "debug", "0"], input="p doubled\nc\n", env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "(Pdb) 100\n" in out.stdout, out.stdout
    assert jray.get(ref, timeout=30) == 101
    none = subprocess.run([sys.executable, "-m", "jray.scripts", "debug"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert none.returncode == 1 and "No task is paused" in none.stdout
    bad = subprocess.run([sys.executable, "-m", "jray.scripts", "debug", "--list", "--address", "127.0.0.1:1"],
                         env=dict(env, JRAY_TOKEN="x"), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "No jray cluster is running at 127.0.0.1:1" in bad.stderr


def test_magic_post_mortem_and_breakpoints(jray_cluster, capsys, monkeypatch) -> None:
    from IPython.testing.globalipapp import get_ipython, start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "jray")
    answers = iter(["p secret", "q"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    try:
        jray.get(fails.remote(4), timeout=30)
    except ValueError as e:
        sys.last_exc = e  # what IPython sets when a cell raised
        sys.last_value = e
    ip.run_line_magic("jray", "debug")
    out = capsys.readouterr().out
    assert "(Pdb) 28\n" in out or "28\n" in out, out
    # A paused task of this kernel comes first.
    ref = pauses.remote(7)
    _paused()
    answers = iter(["p doubled", "c"])
    ip.run_line_magic("jray", "debug")
    out = capsys.readouterr().out
    assert "jray: debugging pauses" in out and "14\n" in out, out
    assert jray.get(ref, timeout=30) == 15
    ip.run_line_magic("jray", "debug --list")
    assert "No task is paused" in capsys.readouterr().out
