"""%%remote and %jray through a real IPython shell, on a real two-node cluster."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("IPython")

import jray  # noqa: E402
from jray import exceptions  # noqa: E402
from jray.testing import Cluster  # noqa: E402


@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import get_ipython, start_ipython

    shell = start_ipython() or get_ipython()  # None when another module started it first
    if jray.is_initialized():
        jray.shutdown()
    cluster = Cluster(head_node_args={"num_cpus": 2, "resources": {"head_only": 1}})
    try:
        cluster.add_node(num_cpus=1)
        cluster.connect()
        _wait_until_raylets_see_every_node()
        shell.run_line_magic("load_ext", "jray")
        yield shell
    finally:
        cluster.shutdown()


def _wait_until_raylets_see_every_node(timeout: float = 20) -> None:
    # A hard node affinity to a node that joined less than a heartbeat ago fails
    # (the head raylet's view is behind the GCS): wait until it works.
    import time

    from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = jray.remote(num_cpus=0)(lambda: None)
    deadline = time.monotonic() + timeout
    for n in jray.nodes():
        while True:
            try:
                jray.get(probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                         .remote(), timeout=timeout)
                break
            except exceptions.TaskUnschedulableError:
                assert time.monotonic() < deadline, "the raylets never saw every node"
                time.sleep(0.1)


def run(ip, cell: str):
    """Run a cell; return its result or raise its error (as a notebook would show it)."""
    result = ip.run_cell(cell, store_history=True)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_cell_runs_remotely_with_globals_in_and_names_out(ip, capsys):
    ip.user_ns["base"] = 20

    def helper(x):
        return x + 1

    ip.user_ns["helper"] = helper
    ip.user_ns.pop("doubled", None)
    value = run(ip, "%%remote\nimport os\ndoubled = helper(base) * 2\nprint('on', os.getpid())\nwhere = os.getpid()\ndoubled + 1\n")
    assert value == 43
    assert ip.user_ns["doubled"] == 42
    assert ip.user_ns["where"] != os.getpid()
    assert "os" not in ip.user_ns or ip.user_ns["os"] is os  # imports are not copied back
    out = capsys.readouterr().out
    assert f"on {ip.user_ns['where']}\n" in out and "pid=" not in out  # bare, like a local print


def test_outputs_option_copies_back_only_the_names_given(ip):
    ip.user_ns.pop("kept", None)
    ip.user_ns.pop("dropped", None)
    run(ip, "%%remote -o kept\nkept = 1\ndropped = 2\n")
    assert ip.user_ns["kept"] == 1 and "dropped" not in ip.user_ns
    run(ip, "%%remote --outputs kept,dropped\nkept = 3\ndropped = 4\n")
    assert (ip.user_ns["kept"], ip.user_ns["dropped"]) == (3, 4)


def test_modules_and_notebook_functions_are_shipped(ip):
    import math

    ip.user_ns["math"] = math
    run(ip, "def square(v):\n    return v * v\n")
    assert run(ip, "%%remote\nsquare(math.isqrt(49))\n") == 49


def test_missing_name_is_a_name_error_before_sending(ip):
    with pytest.raises(NameError, match="'no_such_variable' is not defined"):
        run(ip, "%%remote\nprint(no_such_variable)\n")
    # names the cell defines itself, and builtins, are fine
    assert run(ip, "%%remote\ndef f(a):\n    return [a for _ in range(2)]\nlen(f(1))\n") == 2


def test_unpicklable_global_names_the_variable_and_its_type(ip):
    import threading

    ip.user_ns["a_lock"] = threading.Lock()
    with pytest.raises(TypeError, match=r"'a_lock' \(of type _thread.lock\)"):
        run(ip, "%%remote\nprint(a_lock)\n")
    # rebinding it in the cell means the notebook's value is not needed
    assert run(ip, "%%remote\na_lock = 5\na_lock\n") == 5


def test_remote_error_shows_the_cells_own_lines(ip):
    with pytest.raises(exceptions.RemoteCellError) as info:
        run(ip, "%%remote\nx = 1\n\ny = x / 0\n")
    lines = info.value._render_traceback_()
    text = "\n".join(lines)
    assert "line 4" in text and "y = x / 0" in text and "ZeroDivisionError: division by zero" in text
    assert "jray" not in text.split("\n", 1)[1].replace("jray worker", "")  # no frames of the runner


def test_bad_input_is_reported(ip):
    from IPython.core.error import UsageError

    cases = {
        "%%remote --bogus\nx = 1\n": "unrecognized arguments",
        "%%remote --resources {bad\nx = 1\n": "not valid JSON",
        "%%remote --resources [1]\nx = 1\n": "JSON object",
        "%%remote -o 1x\nx = 1\n": "names separated by commas",
        "%%remote --actor a --all-nodes\nx = 1\n": "cannot be combined",
        "%%remote --node ffffffffffff\nx = 1\n": "matches no live node",
        "%%remote --no-block 3x\nx = 1\n": "variable name",
        "%%remote --num-cpus -1\nx = 1\n": ">= 0",
        "%%remote --working-dir /no/such/dir\nx = 1\n": "does not exist",
        "%%remote --env NOEQUALS\nx = 1\n": "KEY=VALUE",
        "%%remote --pip 'bad req ==='\nx = 1\n": "not a valid requirement",
        "%%remote --runtime-env [1]\nx = 1\n": "JSON object",
        "%%remote --runtime-env '{\"pipp\": 1}'\nx = 1\n": "is not known",
        "%jray frobnicate": "unknown command",
        "%jray autoremote maybe": "on|off",
        "%jray": "usage",
    }
    for cell, message in cases.items():
        with pytest.raises(UsageError, match=message):
            run(ip, cell)
    with pytest.raises(SyntaxError):
        run(ip, "%%remote\nx = (\n")


def test_task_options_reach_the_scheduler(ip):
    head = next(n["NodeID"] for n in jray.nodes() if n["IsHead"])
    other = next(n["NodeID"] for n in jray.nodes() if not n["IsHead"])
    get_node = "import jray\nnode = jray.get_runtime_context().get_node_id()\n"
    run(ip, '%%remote --resources {"head_only":1} --num-cpus 1 --name resourced\n' + get_node)
    assert ip.user_ns["node"] == head
    run(ip, f"%%remote --node {other[:10]}\n" + get_node)
    assert ip.user_ns["node"] == other


def test_a_cell_no_node_can_run_is_flagged(ip, capsys):
    run(ip, '%%remote --no-block never --resources {"unicorn":1}\nx = 1\n')
    err = capsys.readouterr().err
    assert "no live node has CPU=1, unicorn=1" in err or "no live node has unicorn=1, CPU=1" in err
    jray.cancel(ip.user_ns["never"])
    with pytest.raises(exceptions.TaskCancelledError):
        jray.get(ip.user_ns["never"], timeout=30)


def test_no_block_stores_the_ref(ip):
    assert run(ip, "%%remote --no-block pending\nimport time\ntime.sleep(0.2)\nlater = 7\n") is None
    ref = ip.user_ns["pending"]
    assert isinstance(ref, jray.ObjectRef)
    result = jray.get(ref, timeout=30)
    assert result.outputs == {"later": 7}


def test_actor_namespace_keeps_state_between_cells(ip):
    from IPython.core.error import UsageError

    run(ip, "%%remote --actor lab -o counter\ncounter = 10\nsecret = 'kept remotely'\n")
    assert "secret" not in ip.user_ns
    assert run(ip, "%%remote --actor lab\ncounter += 1\nsecret + '!'\n") == "kept remotely!"
    assert ip.user_ns["counter"] == 11
    ip.user_ns["counter"] = 0  # the namespace's own state wins over the notebook's copy
    assert run(ip, "%%remote --actor lab\ncounter\n") == 11
    listing = run(ip, "%jray actors")
    assert "lab" in repr(listing) and "ALIVE" in repr(listing)
    run(ip, "%jray drop lab")
    assert "lab" not in repr(run(ip, "%jray actors"))
    with pytest.raises(UsageError, match="no remote namespace named 'lab'"):
        run(ip, "%jray drop lab")
    # a dropped namespace starts fresh when used again
    with pytest.raises(exceptions.RemoteCellError, match="secret"):
        run(ip, "%%remote --actor lab\nsecret\n")
    run(ip, "%jray drop lab")


def test_all_nodes_runs_once_per_node_grouped(ip, capsys):
    run(ip, "%%remote --all-nodes\nimport jray\nprint('hello from a node')\nnode = jray.get_runtime_context().get_node_id()\n")
    nodes = ip.user_ns["node"]
    assert sorted(nodes) == sorted(n["NodeID"] for n in jray.nodes() if n["Alive"])
    out = capsys.readouterr().out
    assert out.count("hello from a node") == 2 and out.count("[node ") == 2


def test_autoremote_runs_following_cells_remotely(ip):
    run(ip, "%jray autoremote on")
    try:
        run(ip, "import os\nauto_pid = os.getpid()\n")
    finally:
        run(ip, "%jray autoremote off")
    assert ip.user_ns["auto_pid"] != os.getpid()
    run(ip, "import os\nlocal_pid = os.getpid()\n")
    assert ip.user_ns["local_pid"] == os.getpid()


def test_status_views(ip):
    status = run(ip, "%jray status")
    assert "2 alive" in repr(status) and "CPU" in repr(status) and "<table>" in status._repr_html_()
    nodes = run(ip, "%jray nodes")
    assert repr(nodes).count("alive") == 2
    assert "dashboard" in repr(run(ip, "%jray dashboard"))


def test_progress_text_bar_outside_a_notebook(ip, capsys):
    refs = [jray.put(i) for i in range(3)]
    p = jray.progress(refs, desc="puts")
    assert p.wait(10)
    assert sorted(jray.get(list(p))) == [0, 1, 2]
    import time

    time.sleep(0.3)
    assert "3/3" in capsys.readouterr().err


def test_working_dir_and_env_options_ship_code_to_the_cell(ip, tmp_path):
    (tmp_path / "cellmod.py").write_text("V = 'shipped'\n")
    (tmp_path / "data.txt").write_text("payload")
    run(ip, f"%%remote --working-dir {tmp_path} --env CELL_K=v1 --runtime-env '{{\"env_vars\": {{\"CELL_J\": \"v2\"}}}}'\n"
            "import cellmod, os\nv = cellmod.V\ncwd = os.getcwd()\nenv = (os.environ['CELL_K'], os.environ['CELL_J'])\n"
            "data = open('data.txt').read()\n")
    assert ip.user_ns["v"] == "shipped" and ip.user_ns["data"] == "payload"
    assert ip.user_ns["env"] == ("v1", "v2")
    assert ip.user_ns["cwd"] != str(tmp_path) and "runtime_resources" in ip.user_ns["cwd"]
    # a remote namespace takes the env when it is created
    run(ip, f"%%remote --actor withenv --working-dir {tmp_path}\nimport cellmod\nnv = cellmod.V\n")
    assert ip.user_ns["nv"] == "shipped"
    run(ip, "%jray drop withenv")


def test_pip_option_installs_for_the_cell(ip):
    from tests.pip_index import PIP_PKG, need_index

    need_index()
    run(ip, f"%%remote --pip {PIP_PKG}\nimport {PIP_PKG}\nwhere = {PIP_PKG}.__file__\n")
    assert "runtime_resources" in ip.user_ns["where"] and "/pip/" in ip.user_ns["where"]
