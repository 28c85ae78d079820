"""The live widgets in a real kernel: ``ClusterMonitor`` and the inline Bokeh
view (``jray.views.task_stream``) display as widgets, send updates from their
threads while another cell blocks, and leave no thread once closed."""

from __future__ import annotations

import os

import pytest

from tests.notebook.kernel_harness import Kernel

pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def kernel():
    k = Kernel(cwd=REPO)
    try:
        init = k.run("import time\nimport jray\nctx = jray.init(num_cpus=2)\n")
        assert init.status == "ok", init.of_type("error")
        yield k
    finally:
        k.shutdown()


def _comm_msgs(kernel: Kernel, comm_id: str) -> int:
    return sum(1 for msgs in kernel.by_parent.values() for _, m in msgs
               if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == comm_id)


def test_monitor_and_task_stream_update_while_a_cell_blocks(kernel):
    shown = kernel.run(
        "from IPython.display import display\n"
        "mon = jray.widgets.ClusterMonitor(period=0.2)\n"
        "live = jray.views.task_stream(period=0.2)\n"
        "display(mon, live)\n"
        "print(mon.header.model_id, live.model_id)\n")
    assert shown.status == "ok", shown.of_type("error")
    views = [m for m in shown.of_type("display_data") if WIDGET in m["content"]["data"]]
    assert len(views) == 2
    # BokehJS goes into the page (inlined) before the Bokeh widget: its view needs window.Bokeh.
    loads = [m for m in shown.of_type("display_data") if "application/vnd.bokehjs_load.v0+json" in m["content"]["data"]]
    assert loads and "cdn.bokeh.org" not in str(loads[0]["content"]["data"])
    mon_id, live_id = shown.text().split()
    before = (_comm_msgs(kernel, mon_id), _comm_msgs(kernel, live_id))
    busy = kernel.run(
        "@jray.remote\n"
        "def nap(i):\n"
        "    time.sleep(0.3)\n"
        "    return i\n"
        "print(jray.get([nap.remote(i) for i in range(6)], timeout=60))\n"
        "time.sleep(2)\n", timeout=90)
    assert busy.status == "ok", busy.of_type("error")
    kernel.drain(1.0)
    after = (_comm_msgs(kernel, mon_id), _comm_msgs(kernel, live_id))
    assert after[0] > before[0] and after[1] > before[1]  # both pushed updates from their threads
    check = kernel.run(
        "import threading\n"
        "bars = len(live.view.sources['task_stream'].data['task_id'])\n"
        "mon.close(); live.close(); live.close()\n"
        "print(bars >= 6, sorted(t.name for t in threading.enumerate()"
        " if t.name in ('jray-cluster-monitor', 'jray-TaskStreamView')))\n", timeout=60)
    assert check.status == "ok", check.of_type("error")
    assert check.text() == "True []\n"


def test_closed_view_keeps_comm_info_working_and_drops_late_messages(kernel):
    """A view closed in the kernel leaves a stand-in for its comm a while
    (late messages from the browser are dropped, not logged as "No such
    comm"); the kernel's comm_info, which JupyterLab's widget manager asks
    for when it restores widgets after a reconnect, still answers and does
    not offer the closed comm as a widget."""
    cell = kernel.run(
        "from IPython.display import display\n"
        "w = jray.views.task_stream(period=60)\n"
        "display(w)\n"
        "closed_id = w.comm.comm_id\n"
        "w.close()\n"
        "print('closed', closed_id)\n")
    assert cell.status == "ok", cell.of_type("error")
    closed_id = cell.text().split()[-1]
    kc = kernel.kc
    for target in ("jupyter.widget", None):
        msg_id = kc.comm_info(target_name=target)
        reply = kc.get_shell_msg(timeout=20)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=20)
        assert reply["content"]["status"] == "ok", reply["content"]
        comms = reply["content"]["comms"]
        if target is not None:
            assert closed_id not in comms, comms
    # What the browser sends before it learns of the close reaches the stand-in.
    kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": closed_id, "data": {"event": "late"}}))
    check = kernel.run("from jray.jupyter.views.live import _ClosedComm\nprint('dropped', _ClosedComm.dropped)")
    assert int(check.text().split()[-1]) >= 1, check.text()
    streams = "".join(m["content"]["text"] for msgs in kernel.by_parent.values() for _, m in msgs
                      if m["msg_type"] == "stream")
    assert "No such comm" not in streams
    assert "Exception in message handler" not in streams
