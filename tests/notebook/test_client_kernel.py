"""The notebook layer from a kernel on a machine with no jray node (a client).

Hosts (``jray._private.virtual_hosts``: a network namespace with private
/tmp and /dev/shm each): the head on ``a``, a second node on ``b``, a real
Jupyter kernel on ``c`` whose bare ``jray.init()`` finds the cluster through
JRAY_ADDRESS/JRAY_TOKEN, as a kernel of a Jupyter server attached to a
remote cluster does. Covered: the kernel is a client (no store, nothing in
its /dev/shm or /tmp); output of tasks and actors on either node lands in
the submitting cell, late output too; Ctrl-C (SIGINT to the kernel)
cancels the tasks and actor calls waited on and a %%remote cell;
``%%remote`` (streaming, names back, errors, ``--actor``); ``jray.progress``;
tqdm in a task; ``ClusterMonitor`` and the Bokeh views' data sources with
both nodes; ``%jray status``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from jray._private import virtual_hosts as vh
from tests.notebook.host_kernel import HostKernel

pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with vh.VirtualHosts() as v:
        a, b, c = v.add_host("a"), v.add_host("b"), v.add_host("c")
        address, token = vh.start_head(a, num_cpus=2, object_store_memory=128 * 1024 * 1024,
                                       extra_args=["--resources", '{"host_a": 4}'])
        vh.start_node(b, address, token, num_cpus=2, object_store_memory=128 * 1024 * 1024,
                      extra_args=["--resources", '{"host_b": 4}'])
        yield v, a, b, c, address, token
    assert v.leftovers() == []


@pytest.fixture(scope="module")
def kernel(cluster, tmp_path_factory):
    v, a, b, c, address, token = cluster
    log_path = tmp_path_factory.mktemp("client-kernel") / "kernel.log"
    with open(log_path, "wb") as log:
        k = HostKernel(c, vh.jray_env(c, JRAY_ADDRESS=address, JRAY_TOKEN=token), log)
        try:
            init = k.run("%load_ext jray\nimport time, socket\nimport jray\nctx = jray.init()\nctx", timeout=60)
            assert init.status == "ok", (init.of_type("error"), log_path.read_text(errors="replace")[-3000:])
            k.init_cell = init  # type: ignore[attr-defined]
            yield k
        finally:
            k.shutdown()


def test_the_kernel_is_a_client_with_no_store(kernel, cluster):
    v, a, b, c, address, token = cluster
    html = kernel.init_cell.of_type("execute_result")[0]["content"]["data"]["text/html"]
    assert "jray cluster" in html and address in html and "4" in html  # 4 CPUs over two nodes
    cell = kernel.run(
        "import json, numpy as np\n"
        "from jray._private.worker import global_state\n"
        "ref = jray.put(np.arange(4_000_000, dtype=np.int64))\n"  # 32 MB, streamed to the head's store
        "@jray.remote\n"
        "def total(x):\n"
        "    return int(x.sum()), socket.gethostname()\n"
        "got = jray.get([total.options(resources={f'host_{h}': 1}).remote(ref) for h in 'ab'])\n"
        "back = jray.get(ref)\n"
        "shm = [ln for ln in open('/proc/self/maps') if '/dev/shm' in ln]\n"
        "print(json.dumps({'client': global_state.worker.client, 'got': got, 'back': int(back[-1]),"
        " 'shm': shm}))\n", timeout=90)
    assert cell.status == "ok", cell.of_type("error")
    out = json.loads(cell.text().strip().splitlines()[-1])
    total = sum(range(4_000_000))
    assert out == {"client": True, "got": [[total, "a"], [total, "b"]], "back": 3_999_999, "shm": []}
    assert os.listdir(c.fs_path("/dev/shm")) == []  # no store file on the client's machine
    assert not os.path.exists(c.fs_path("/tmp/jray/jray_current_cluster"))  # no node, no session here
    kernel.run("del ref, back")


def test_late_output_lands_in_the_submitting_cell(kernel):
    a = kernel.run(
        "@jray.remote(resources={'host_b': 1})\n"
        "def chatty():\n"
        "    print('early line')\n"
        "    time.sleep(1.0)\n"
        "    print('late line')\n"
        "chatty_ref = chatty.remote()\n"
        "print('cell a done')\n")
    b = kernel.run("time.sleep(1.6)\nprint('cell b')")
    kernel.wait_for(a, "late line")
    kernel.drain(0.2)
    assert a.status == b.status == "ok"
    assert "cell a done" in a.text()
    assert "(chatty pid=" in a.text() and "early line" in a.text() and "late line" in a.text()
    assert a.first_time("late line") > a.finished
    assert b.text() == "cell b\n"


def test_nested_task_and_actor_output_route_to_the_root_cell(kernel):
    c = kernel.run(
        "@jray.remote(resources={'host_b': 1})\n"
        "def inner():\n"
        "    print('from inner on', socket.gethostname())\n"
        "@jray.remote(resources={'host_a': 1})\n"
        "def outer():\n"
        "    jray.get(inner.remote())\n"
        "@jray.remote(resources={'host_b': 0.1})\n"
        "class Talker:\n"
        "    def say(self, s):\n"
        "        print('actor says', s, 'on', socket.gethostname())\n"
        "jray.get(outer.remote())\n"
        "t = Talker.remote()\n"
        "jray.get(t.say.remote('hi'))\n", timeout=60)
    assert c.status == "ok", c.of_type("error")
    text = c.text()
    assert "(inner pid=" in text and "from inner on b" in text
    assert "(Talker pid=" in text and "actor says hi on b" in text
    d = kernel.run("jray.get(t.say.remote('again'))")
    kernel.wait_for(d, "actor says again")  # (routing is asserted here; ordering by the test below)
    assert "actor says again" not in c.text()


def test_a_calls_output_reaches_its_cell_before_its_result(kernel, cluster):
    """A batch of lines the 20 ms timer sent while the call still ran is
    waited for before the reply leaves: a client's lines come the long way
    (relayed by its home raylet on ``a``, slowed here), the reply straight
    from ``b``, and the output must not land after the cell finished."""
    v, a, b, c, address, token = cluster
    setup = kernel.run(
        "@jray.remote(resources={'host_b': 0.1})\n"
        "class Slow:\n"
        "    def say(self, n):\n"
        "        print('said before returning', n)\n"
        "        time.sleep(0.1)\n"
        "        return n\n"
        "@jray.remote(resources={'host_b': 0.1})\n"
        "class SlowAsync:\n"
        "    async def say(self, n):\n"
        "        print('async said before returning', n)\n"
        "        await asyncio.sleep(0.1)\n"
        "        return n\n"
        "import asyncio\n"
        "slow, slow_async = Slow.remote(), SlowAsync.remote()\n"
        "jray.get([slow.say.remote(0), slow_async.say.remote(0)])\n", timeout=60)
    assert setup.status == "ok", setup.of_type("error")
    a.netem(delay_ms=150)
    try:
        d = kernel.run("jray.get(slow.say.remote(1))", timeout=60)
        e = kernel.run("jray.get(slow_async.say.remote(2))", timeout=60)
    finally:
        a.netem()
    assert d.status == e.status == "ok", (d.of_type("error"), e.of_type("error"))
    assert "said before returning 1" in d.text()
    assert "async said before returning 2" in e.text()
    kernel.run("del slow, slow_async")


def test_interrupt_cancels_the_tasks_waited_on(kernel):
    setup = kernel.run(
        "@jray.remote(resources={'host_b': 1})\n"
        "def sleeper():\n"
        "    time.sleep(60)\n"
        "@jray.remote\n"
        "def quick(x):\n"
        "    return x\n"
        "slow_ref = sleeper.remote()\n")
    assert setup.status == "ok"
    cut = kernel.run("jray.get(slow_ref)", interrupt_after=1.0, timeout=20)
    assert cut.ename == "KeyboardInterrupt"
    assert "[jray] interrupted: cancelled 1 task" in cut.text("stderr")
    after = kernel.run(
        "try:\n"
        "    jray.get(slow_ref, timeout=10)\n"
        "except jray.exceptions.TaskCancelledError:\n"
        "    print('cancelled')\n"
        "print(jray.get([quick.remote(i) for i in range(4)], timeout=10))\n", timeout=30)
    assert after.status == "ok", after.of_type("error")
    assert after.text() == "cancelled\n[0, 1, 2, 3]\n"


def test_interrupt_cancels_actor_calls_waited_on(kernel):
    setup = kernel.run(
        "import asyncio\n"
        "@jray.remote(resources={'host_a': 0.1})\n"
        "class Napper:\n"
        "    async def nap(self, s):\n"
        "        await asyncio.sleep(s)\n"
        "        return 'woke'\n"
        "napper = Napper.remote()\n"
        "print(jray.get(napper.nap.remote(0), timeout=30))\n", timeout=40)
    assert setup.text() == "woke\n", setup.of_type("error")
    cut = kernel.run("long_nap = napper.nap.remote(60)\njray.get(long_nap)", interrupt_after=1.0, timeout=20)
    assert cut.ename == "KeyboardInterrupt"
    assert "[jray] interrupted: cancelled 1 task" in cut.text("stderr")
    after = kernel.run(
        "try:\n"
        "    jray.get(long_nap, timeout=10)\n"
        "except jray.exceptions.TaskCancelledError:\n"
        "    print('cancelled')\n"
        "print(jray.get(napper.nap.remote(0), timeout=10))\n", timeout=30)
    assert after.text() == "cancelled\nwoke\n", after.of_type("error")


def test_remote_cell_streams_and_returns_names(kernel):
    kernel.run("factor = 6\n")
    cell = kernel.run(
        "%%remote --resources '{\"host_b\": 1}'\n"
        "import socket, time\n"
        "print('first')\n"
        "time.sleep(1.0)\n"
        "print('second')\n"
        "answer = factor * 7\n"
        "ran_on = socket.gethostname()\n"
        "answer + 1\n", timeout=60)
    assert cell.status == "ok", cell.of_type("error")
    assert cell.text() == "first\nsecond\n"
    assert cell.first_time("first") < cell.finished - 0.5  # live, not at the end
    assert cell.of_type("execute_result")[0]["content"]["data"]["text/plain"] == "43"
    back = kernel.run("print(answer, ran_on)")
    assert back.text() == "42 b\n"


def test_remote_cell_error_and_interrupt(kernel):
    err = kernel.run("%%remote\nx = 1\n\ny = x / 0\n")
    assert err.ename == "RemoteCellError"
    tb = "\n".join(err.of_type("error")[0]["content"]["traceback"])
    assert "y = x / 0" in tb and "ZeroDivisionError: division by zero" in tb
    cut = kernel.run("%%remote\nimport time\ntime.sleep(60)\n", interrupt_after=1.0, timeout=20)
    assert cut.ename == "KeyboardInterrupt"
    again = kernel.run("%%remote\nprint('still working')\n", timeout=20)
    assert again.text() == "still working\n"


def test_remote_namespace_actor_keeps_state(kernel):
    kernel.run("%%remote --actor client_ns\nkept = 'state'\n", timeout=30)
    cut = kernel.run("%%remote --actor client_ns\nimport time\ntime.sleep(60)\n", interrupt_after=1.0, timeout=20)
    assert cut.ename == "KeyboardInterrupt"
    after = kernel.run("%%remote --actor client_ns\nprint(kept)\n", timeout=20)
    assert after.text() == "state\n", after.of_type("error")
    kernel.run("%jray drop client_ns")


def test_progress_and_tqdm_in_a_task(kernel):
    cell = kernel.run(
        "@jray.remote\n"
        "def step(i):\n"
        "    time.sleep(0.05 * i)\n"
        "    return i\n"
        "p = jray.progress([step.remote(i) for i in range(6)], desc='steps')\n"
        "done = [jray.get(r) for r in p]\n"
        "print(sorted(done), p.n, p.total)\n", timeout=60)
    assert cell.status == "ok", cell.of_type("error")
    assert len([m for m in cell.of_type("display_data") if WIDGET in m["content"]["data"]]) == 1
    assert cell.text() == "[0, 1, 2, 3, 4, 5] 6 6\n"
    bars = kernel.run(
        "from jray.jupyter import tqdm\n"
        "@jray.remote(resources={'host_b': 1})\n"
        "def loop(n):\n"
        "    for _ in tqdm(range(n), desc='inner'):\n"
        "        time.sleep(0.1)\n"
        "    return n\n"
        "jray.get(loop.remote(4))\n", timeout=60)
    assert bars.status == "ok", bars.of_type("error")
    drawn = [m for m in bars.of_type("display_data", "update_display_data")
             if "jray-progress" in m["content"]["data"].get("text/html", "")]
    assert drawn and "inner: 100%" in drawn[-1]["content"]["data"]["text/plain"]


def _comm_msgs(kernel, comm_id: str) -> int:
    return sum(1 for msgs in kernel.by_parent.values() for _, m in msgs
               if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == comm_id)


def test_monitor_and_views_show_the_remote_cluster(kernel, cluster):
    v, a, b, c, address, token = cluster
    shown = kernel.run(
        "from IPython.display import display\n"
        "mon = jray.widgets.ClusterMonitor(period=0.3)\n"
        "live = jray.views.task_stream(period=0.3)\n"
        "store = jray.views.object_store(period=0.3)\n"
        "display(mon, live, store)\n"
        "print(mon.header.model_id, live.model_id, len(mon.panels))\n", timeout=60)
    assert shown.status == "ok", shown.of_type("error")
    assert len([m for m in shown.of_type("display_data") if WIDGET in m["content"]["data"]]) == 3
    mon_id, live_id, panels = shown.text().split()
    assert panels == "2"
    before = (_comm_msgs(kernel, mon_id), _comm_msgs(kernel, live_id))
    busy = kernel.run(
        "@jray.remote\n"
        "def nap(i):\n"
        "    time.sleep(0.3)\n"
        "    return i\n"
        "kept = jray.put(b'x' * 2_000_000)\n"
        "print(jray.get([nap.options(resources={f'host_{h}': 1}).remote(i) for i, h in enumerate('abab')],"
        " timeout=60))\n"
        "time.sleep(2)\n", timeout=90)
    assert busy.status == "ok", busy.of_type("error")
    kernel.drain(1.0)
    after = (_comm_msgs(kernel, mon_id), _comm_msgs(kernel, live_id))
    assert after[0] > before[0] and after[1] > before[1]  # both pushed updates from their threads
    check = kernel.run(
        "import json, threading\n"
        "store.view.update()\n"
        "d = store.view.data()\n"
        "naps = live.view.data()['task_stream']['name'].count('nap')\n"
        "print(json.dumps({'naps': naps, 'ips': sorted(d['store_nodes']['node_ip']),"
        " 'mon': mon.header.value, 'objects': max(d['store_objects']['size'] or [0])}))\n"
        "mon.close(); live.close(); store.close()\n"
        "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('jray-') and"
        " ('monitor' in t.name or 'View' in t.name)))\n", timeout=60)
    assert check.status == "ok", check.of_type("error")
    first, threads = check.text().strip().splitlines()
    got = json.loads(first)
    assert got["naps"] >= 4 and got["ips"] == sorted([a.ip, b.ip])
    assert "2 nodes alive" in got["mon"] and got["objects"] >= 2_000_000
    assert threads == "[]"


def test_status_magic(kernel, cluster):
    address = cluster[4]
    cell = kernel.run("%jray status", timeout=30)
    assert cell.status == "ok", cell.of_type("error")
    shown = str(cell.of_type("display_data", "execute_result"))
    assert address in shown


def test_remote_cell_on_every_node_and_with_the_clients_working_dir(kernel, cluster):
    v, a, b, c, address, token = cluster
    every = kernel.run("%%remote --all-nodes\nimport socket\nwho = socket.gethostname()\nprint('hello from', who)\n",
                       timeout=60)
    assert every.status == "ok", every.of_type("error")
    assert every.text().count("hello from") == 2 and "hello from a" in every.text() and "hello from b" in every.text()
    assert kernel.run("print(sorted(who))").text() == "['a', 'b']\n"
    # A directory on the client's machine (its private /tmp) ships with the cell.
    made = kernel.run("import os\nos.makedirs('/tmp/nbproj', exist_ok=True)\n"
                      "open('/tmp/nbproj/nbhelper.py', 'w').write('WHERE = \"from the client\"\\n')\n")
    assert made.status == "ok"
    cell = kernel.run(f"%%remote --node {b.ip} --working-dir /tmp/nbproj\n"
                      "import socket, nbhelper\nprint(nbhelper.WHERE, 'on', socket.gethostname())\n", timeout=60)
    assert cell.status == "ok", (cell.text(), cell.of_type("error"))
    assert cell.text() == "from the client on b\n"


def test_second_interrupt_kills_a_task_that_ignores_the_first(kernel):
    setup = kernel.run(
        "@jray.remote(max_retries=0, resources={'host_b': 1})\n"
        "def stubborn():\n"
        "    import signal\n"
        "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "    print('ignoring SIGINT', flush=True)\n"
        "    time.sleep(60)\n"
        "stubborn_ref = stubborn.remote()\n", timeout=30)
    assert setup.status == "ok"
    kernel.wait_for(setup, "ignoring SIGINT", timeout=20)  # the task runs (its print reached the cell)
    first = kernel.run("jray.get(stubborn_ref)", interrupt_after=0.8, timeout=20)
    assert first.ename == "KeyboardInterrupt"
    second = kernel.run("jray.get(stubborn_ref)", interrupt_after=0.8, timeout=20)
    assert second.ename == "KeyboardInterrupt"
    assert "killed the workers of 1" in second.text("stderr")
    after = kernel.run(
        "try:\n"
        "    jray.get(stubborn_ref, timeout=10)\n"
        "except (jray.exceptions.TaskCancelledError, jray.exceptions.WorkerCrashedError) as e:\n"
        "    print('ended:', type(e).__name__)\n", timeout=30)
    assert after.text().startswith("ended:"), after.of_type("error")


def _shape(host, rate: str | None) -> None:
    """Limit the host's link to ``rate`` each way (tc tbf; None: no limit)."""
    for tc, dev in ((["tc", "-n", host.netns], vh._IFACE), (["tc"], host.veth)):
        if rate is None:
            subprocess.run([*tc, "qdisc", "del", "dev", dev, "root"], capture_output=True, timeout=10)
        else:
            subprocess.run([*tc, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "256kb",
                            "latency", "500ms"], check=True, capture_output=True, timeout=10)


def _head_store_used(kernel) -> int:
    cell = kernel.run("from jray.util.state import list_nodes\n"
                      "print([n['object_store_used'] for n in list_nodes(detail=True) if n['is_head_node']][0])\n")
    return int(cell.text())


def test_interrupting_a_large_transfer_over_a_slow_link(kernel, cluster):
    """Ctrl-C during a client's get or put streaming 80 MB over a 100 Mbit/s
    link: the stream stops at once, the kernel carries on, nothing is left
    half-written in the head's store (the raylet's cancelled WriteObject
    handler drops it), the object can be read again."""
    if subprocess.run(["tc", "-V"], capture_output=True).returncode != 0:
        pytest.skip("no tc to slow the client's link")
    c = cluster[3]
    made = kernel.run(
        "import numpy as np\n"
        "@jray.remote(resources={'host_b': 1})\n"
        "def make():\n"
        "    return np.ones(10_000_000)\n"  # 80 MB, in node b's store
        "@jray.remote\n"
        "def echo(x):\n"
        "    return x\n"
        "big_ref = make.remote()\n"
        "blob = np.full(10_000_000, 2.0)\n"
        "print(len(jray.wait([big_ref], timeout=60)[0]))\n", timeout=90)
    assert made.text() == "1\n", made.of_type("error")
    before = _head_store_used(kernel)
    try:
        _shape(c, "100mbit")
        cut = kernel.run("arr = jray.get(big_ref)", interrupt_after=1.0, timeout=30)
        assert cut.ename == "KeyboardInterrupt", (cut.text(), cut.of_type("error"))
        assert cut.finished - cut.started < 4
        for after in (1.0, 2.0):  # half-way through a put (about 6 s at this rate)
            _shape(c, "100mbit")
            cut = kernel.run("put_ref = jray.put(blob)", interrupt_after=after, timeout=30)
            assert cut.ename == "KeyboardInterrupt", (cut.text(), cut.of_type("error"))
            assert cut.finished - cut.started < after + 3
            _shape(c, None)
            deadline = time.monotonic() + 10
            while _head_store_used(kernel) > before and time.monotonic() < deadline:
                time.sleep(0.3)
            assert _head_store_used(kernel) == before, f"a put cut after {after} s left its object in the store"
        alive = kernel.run("print(jray.get(echo.remote(7), timeout=20))", timeout=30)
        assert alive.text() == "7\n", [m["content"] for m in alive.of_type("error")]
    finally:
        _shape(c, None)
    again = kernel.run("print(float(jray.get(big_ref, timeout=60).sum()))\n"
                       "r = jray.put(blob)\nprint(float(jray.get(r).sum()))\ndel r, blob\n", timeout=60)
    assert again.text() == "10000000.0\n20000000.0\n", again.of_type("error")
