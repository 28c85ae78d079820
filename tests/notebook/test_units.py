"""The notebook layer's plain parts, without a cluster: cell analysis, the
rich-output wire format, output routing against a stand-in kernel, and the
autoremote transformer."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import pytest

from jray.jupyter import autoremote, cell_source, routing, wire


def names(src: str) -> cell_source.CellNames:
    return cell_source.names_of(cell_source.parse(src, "<cell>"))


def test_reads_binds_and_assigns():
    n = names(
        "import numpy as np\n"
        "from os import path as p\n"
        "total = 0\n"
        "for i in data:\n"
        "    total += scale(i)\n"
        "def f(a, *rest, k=1, **kw):\n"
        "    global g\n"
        "    return [x for x in a] + list(rest) + [helper]\n"
        "class C:\n"
        "    attr = 1\n"
        "try:\n"
        "    pass\n"
        "except ValueError as err:\n"
        "    caught = err\n"
        "if (w := 3):\n"
        "    inside_if = w\n")
    assert n.reads[:3] == ["data", "total", "scale"]
    assert {"helper", "ValueError", "list"} <= set(n.reads)
    assert {"np", "p", "total", "i", "f", "a", "rest", "k", "kw", "g", "x", "C", "err", "caught", "w"} <= n.bound
    assert n.assigned == ["np", "p", "total", "i", "f", "C", "caught", "w", "inside_if"]
    assert n.imported == {"np", "p"}


def test_line_numbers_follow_the_cell():
    tree = cell_source.parse("a = 1\nb = 2\n", "<cell>", first_line=2)
    assert [s.lineno for s in tree.body] == [2, 3]
    with pytest.raises(SyntaxError) as info:
        cell_source.parse("a = 1\nb = (\n", "<cell>", first_line=2)
    assert info.value.lineno == 3


@pytest.mark.parametrize("name,internal", [("In", True), ("_", True), ("_i3", True), ("_12", True),
                                           ("_ii", True), ("_private", False), ("data", False)])
def test_ipython_bookkeeping_names_are_never_shipped(name, internal):
    assert cell_source.is_ipython_internal(name) is internal


def test_wire_round_trip_and_size_limit():
    msg = {"kind": "display", "data": {"text/plain": "x\ny"}}
    text = wire.encode(msg)
    assert "\n" not in text and wire.decode(text) == msg
    assert wire.decode("plain line") is None
    big = wire.decode(wire.encode({"kind": "display", "data": {"text/plain": "z" * (wire.MAX_BYTES + 1)}}))
    assert big is not None and "not sent" in big["data"]["text/plain"]


class FakeStream(io.StringIO):
    """ipykernel's OutStream as the router uses it: per-thread parents, and a pub_thread."""

    pub_thread = None

    def __init__(self) -> None:
        super().__init__()
        self.parent: dict | None = None
        self.writes: list[tuple[str, str]] = []

    def set_thread_parent(self, parent: dict) -> dict | None:
        old, self.parent = self.parent, parent
        return old

    def reset_thread_parent(self, token: dict | None) -> None:
        self.parent = token

    def write(self, s: str) -> int:
        self.writes.append((self.parent["header"]["msg_id"] if self.parent else "", s))
        return len(s)


class FakePublisher(FakeStream):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, dict, bool]] = []

    def publish(self, data: dict, metadata: dict, transient: dict, update: bool) -> None:
        self.published.append((self.parent["header"]["msg_id"] if self.parent else "", transient, update))


class FakeShell:
    def __init__(self) -> None:
        self.kernel = object()
        self.current = {"header": {"msg_id": "now"}}
        self.display_pub = FakePublisher()

    def get_parent(self) -> dict:
        return self.current


def _router(monkeypatch) -> tuple[routing.OutputRouter, FakeShell, FakeStream, FakeStream]:
    out, err = FakeStream(), FakeStream()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    shell = FakeShell()
    return routing.OutputRouter(shell), shell, out, err


def _line(text: str, root: bytes, task: bytes = b"t", prefix: str = "f", is_err: bool = False) -> SimpleNamespace:
    return SimpleNamespace(text=text, root_task_id=root, task_id=task, prefix=prefix, is_err=is_err)


def test_router_writes_each_line_under_its_cells_parent(monkeypatch):
    r, shell, out, _ = _router(monkeypatch)
    shell.current = {"header": {"msg_id": "cell-1"}}
    r.cell_started(b"c1")
    shell.current = {"header": {"msg_id": "cell-2"}}
    r.cell_started(b"c2")
    r(SimpleNamespace(pid=7, lines=[_line("late", b"c1"), _line("more", b"c1"), _line("now", b"c2"),
                                    _line("unknown root", b"zz")]))
    # a line whose cell is unknown (submitted before jray was attached) goes to the current cell
    assert out.writes == [("cell-1", "(f pid=7) late\n(f pid=7) more\n"),
                          ("cell-2", "(f pid=7) now\n(f pid=7) unknown root\n")]
    assert out.parent is None  # the thread's parent is restored


def test_output_of_an_earlier_cell_escapes_the_running_cells_capture(monkeypatch):
    r, shell, out, _ = _router(monkeypatch)
    shell.current = {"header": {"msg_id": "cell-1"}}
    r.cell_started(b"c1")
    shell.current = {"header": {"msg_id": "cell-2"}}
    r.cell_started(b"c2")
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stdout", captured)  # the running cell redirects its stdout
    r(SimpleNamespace(pid=1, lines=[_line("old", b"c1"), _line("mine", b"c2")]))
    assert out.writes == [("cell-1", "(f pid=1) old\n")]
    assert captured.getvalue() == "(f pid=1) mine\n"


def test_router_labels_captures_and_bars(monkeypatch):
    r, shell, out, _ = _router(monkeypatch)
    r.cell_started(b"c1")
    r.label(b"bare", routing.NO_PREFIX)
    kept = r.capture(b"kept")
    bar = wire.encode({"kind": "progress", "id": "b1", "n": 1, "total": 2, "text": "1/2"})
    done = wire.encode({"kind": "progress", "id": "b1", "n": 2, "total": 2, "text": "2/2", "closed": True})
    r(SimpleNamespace(pid=1, lines=[_line("plain", b"c1", b"bare"), _line("held", b"c1", b"kept"),
                                    _line(bar, b"c1"), _line(done, b"c1")]))
    assert out.writes == [("now", "plain\n")]
    assert kept == [("stdout", "held")]
    (p1, t1, u1), (p2, t2, u2) = shell.display_pub.published
    assert p1 == p2 == "now"
    assert t1 == t2 == {"display_id": "jray-bar-b1"} and (u1, u2) == (False, True)


def test_router_drops_a_flood_with_one_note(monkeypatch):
    r, shell, out, err = _router(monkeypatch)
    r.cell_started(b"c1")
    monkeypatch.setattr(routing, "MAX_LINES_PER_CELL", 3)
    r(SimpleNamespace(pid=1, lines=[_line(str(i), b"c1") for i in range(10)]))
    assert "".join(s for _, s in out.writes).count("\n") == 3
    assert len(err.writes) == 1 and "dropped" in err.writes[0][1]


def test_router_without_thread_parents_sends_with_the_cells_parent(monkeypatch):
    # ipykernel 6: no per-thread parents, so messages go out directly after a flush
    sent: list[tuple[str, dict, dict, bytes]] = []
    session = SimpleNamespace(send=lambda sock, t, content, parent, ident: sent.append((t, content, parent, ident)))
    shell = SimpleNamespace(kernel=SimpleNamespace(session=session, iopub_socket=object()),
                            parent_header={"header": {"msg_id": "cell-1"}})
    r = routing.OutputRouter(shell)
    r.cell_started(b"c1")
    shell.parent_header = {"header": {"msg_id": "cell-2"}}
    r.cell_started(b"c2")
    shown = wire.encode({"kind": "display", "data": {"text/html": "<b>x</b>"}, "display_id": "d"})
    r(SimpleNamespace(pid=3, lines=[_line("hello", b"c1", is_err=True), _line(shown, b"c1")]))
    (t1, c1, p1, i1), (t2, c2, p2, i2) = sent
    assert (t1, c1, i1) == ("stream", {"name": "stderr", "text": "(f pid=3) hello\n"}, b"stream.stderr")
    assert (t2, c2["transient"], i2) == ("display_data", {"display_id": "d"}, b"display_data")
    assert p1 == p2 == {"header": {"msg_id": "cell-1"}}


def test_autoremote_transformer():
    shell = SimpleNamespace(input_transformers_cleanup=[])
    autoremote.enable(shell)
    autoremote.enable(shell)
    assert len(shell.input_transformers_cleanup) == 1
    t = shell.input_transformers_cleanup[0]
    assert t(["x = 1\n"]) == ["%%remote --from-autoremote\n", "x = 1\n"]
    assert t(["%jray autoremote off\n"]) == ["%jray autoremote off\n"]
    assert t(["%%time\n", "x\n"]) == ["%%time\n", "x\n"]
    assert t(["\n"]) == ["\n"]
    autoremote.disable(shell)
    assert shell.input_transformers_cleanup == []


def test_context_repr_links_the_dashboard_when_there_is_one():
    from jray.api import JrayContext

    with_url = JrayContext({"gcs_address": "127.0.0.1:1", "dashboard_url": "http://127.0.0.1:8265"})
    assert "<a href='http://127.0.0.1:8265'" in with_url._repr_html_()
    assert "Dashboard" not in JrayContext({"gcs_address": "127.0.0.1:1"})._repr_html_()
