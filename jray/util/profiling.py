"""A CPU profile of a task or an actor for N seconds, as a flame graph.

::

    jray profile --actor-id ID --duration 5 --output flame.svg
    %jray profile ACTOR_OR_TASK_ID_OR_PID 5          # the flame graph in the cell
    from jray.util.profiling import profile
    p = profile(actor_id=handle._actor_id.hex(), duration=5)
    p                                                # a notebook shows the SVG
    print(p.top(10))                                 # the hottest frames, as text

The worker running the task or actor (on this machine: as ``jray stack``,
only registered workers are signalled) samples its threads' stacks every
``interval`` seconds (``jray._private.worker.sampler``, started by SIGUSR2);
each sample weighs the CPU time its thread used since the last one, so
threads blocked in a sleep, a socket or a lock count nothing: the graph is
where the CPU went. Each frame's width is its share of the
samples; hover a frame for its name and count.
"""

from __future__ import annotations

import html
import json
import os
import signal
import time
import zlib
from dataclasses import dataclass
from typing import Any

from jray._private import node as _node


@dataclass
class Profile:
    pid: int
    folded: dict[str, int]
    samples: int
    idle: int
    duration: float
    what: str = ""
    tick_s: float = 0.01

    @property
    def cpu_seconds(self) -> float:
        """CPU time the sampled threads used while sampled."""
        return self.samples * self.tick_s

    def top(self, n: int = 15) -> str:
        """The frames with the most samples on the stack (inclusive), as text."""
        incl: dict[str, int] = {}
        for stack, count in self.folded.items():
            for frame in set(stack.split(";")[1:]):
                if not frame.startswith("~"):  # the standard library's and jray's own frames
                    incl[frame] = incl.get(frame, 0) + count
        rows = sorted(incl.items(), key=lambda kv: -kv[1])[:n]
        total = max(self.samples, 1)
        lines = [f"{self.what or f'pid {self.pid}'}: {self.cpu_seconds:.2f} s of CPU in {self.duration:g} s "
                 f"(share of it, by frame, own code first):"]
        lines += [f"{100 * c / total:5.1f}%  {f}" for f, c in rows]
        return "\n".join(lines)

    def to_svg(self, width: int = 1200, row: int = 17) -> str:
        """A flame graph (root at the bottom), self-contained SVG."""
        root: dict[str, Any] = {"n": 0, "c": {}}
        for stack, count in self.folded.items():
            node = root
            node["n"] += count
            for frame in stack.split(";"):
                node = node["c"].setdefault(frame, {"n": 0, "c": {}})
                node["n"] += count

        def depth(n: dict[str, Any]) -> int:
            return 1 + max((depth(c) for c in n["c"].values()), default=0)

        levels = depth(root)
        height = (levels + 1) * row + 24
        total = max(root["n"], 1)
        rects: list[str] = []

        def draw(n: dict[str, Any], x: float, level: int) -> None:
            for name, child in sorted(n["c"].items()):
                w = width * child["n"] / total
                if w >= 0.5:
                    y = height - (level + 1) * row - 4
                    hue = 20 + zlib.crc32(name.split(":")[0].encode()) % 40
                    name = name.lstrip("~")
                    label = html.escape(name if w > 7 * len(name) else name.split(":")[1] if w > 60 else "")
                    tip = html.escape(f"{name.lstrip('~')}: {child['n'] * self.tick_s:.2f} s of CPU "
                                      f"({100 * child['n'] / total:.1f}%)")
                    rects.append(f"<g><title>{tip}</title><rect x='{x:.1f}' y='{y}' width='{max(w - 0.5, 0.5):.1f}' "
                                 f"height='{row - 1}' fill='hsl({hue},85%,60%)'/>"
                                 f"<text x='{x + 3:.1f}' y='{y + row - 5}' font-size='11'>{label}</text></g>")
                    draw(child, x, level + 1)
                x += w

        draw(root, 0.0, 0)
        title = html.escape(f"{self.what or f'pid {self.pid}'}: {self.cpu_seconds:.2f} s of CPU in {self.duration:g} s")
        return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
                f"font-family='monospace'><text x='4' y='14' font-size='12'>{title}</text>{''.join(rects)}</svg>")

    def _repr_svg_(self) -> str:
        return self.to_svg()


def _listening_on(port: int, address: str | None, token: str | None) -> int | None:
    """The local jray worker whose server listens on ``port`` (an actor row
    names its worker's address, not its pid)."""
    import psutil

    from jray.util.state import list_workers

    if not port:
        return None
    for w in list_workers(limit=0, detail=True, address=address, token=token):
        if w.get("worker_type") != "WORKER" or not w.get("pid"):
            continue
        try:
            conns = psutil.Process(int(w["pid"])).net_connections(kind="tcp")
        except (psutil.Error, AttributeError):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns):
            return int(w["pid"])
    return None


def _pid_of(task_id: str | None, actor_id: str | None, address: str | None, token: str | None) -> tuple[int, str]:
    from jray.util.state import list_actors, list_tasks

    if actor_id:
        rows = [a for a in list_actors(filters=[("actor_id", "=", actor_id)], limit=0, detail=True, address=address,
                                       token=token) if a.get("state") == "ALIVE"]
        if not rows:
            raise ValueError(f"no live actor {actor_id}")
        pid = rows[0].get("pid") or _listening_on(int(rows[0].get("port") or 0), address, token)
        if not pid:
            raise ValueError(f"actor {actor_id} has no worker process yet")
        return int(pid), f"actor {rows[0].get('class_name', '')} {actor_id[:12]}"
    if task_id:
        rows = [t for t in list_tasks(filters=[("task_id", "=", task_id)], limit=0, detail=True, address=address,
                                      token=token) if t.get("state") == "RUNNING"]
        if not rows or not rows[0].get("worker_pid"):
            raise ValueError(f"no running task {task_id}")
        return int(rows[0]["worker_pid"]), f"task {rows[0].get('name', '')} {task_id[:12]}"
    raise ValueError("give task_id, actor_id or pid")


def profile(task_id: str | None = None, *, actor_id: str | None = None, pid: int | None = None,
            duration: float = 5.0, interval: float = 0.01, address: str | None = None,
            token: str | None = None) -> Profile:
    """Sample the worker that runs ``task_id`` or ``actor_id`` (or the
    worker ``pid``) on this machine for ``duration`` seconds."""
    from jray.util.state import list_workers

    if not 0 < duration <= 600:
        raise ValueError(f"duration must be in (0, 600] seconds, got {duration!r}")
    what = ""
    if pid is None:
        pid, what = _pid_of(task_id, actor_id, address, token)
    local = _node.local_ip_addresses()
    mine = {int(w["pid"]) for w in list_workers(limit=0, detail=True, address=address, token=token)
            if w.get("is_alive") and w.get("worker_type") == "WORKER" and w.get("pid")
            and (w.get("ip") in local or str(w.get("ip", "")).startswith("127."))}
    if pid not in mine:
        raise ValueError(f"pid {pid} is not a live jray worker on this machine (profile on the machine that runs it)")
    env = {}
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(kv.split("=", 1) for kv in f.read().decode(errors="replace").split("\0") if "=" in kv)
    except OSError:
        pass
    session = env.get("JRAY_SESSION_DIR")
    if not session:
        raise ValueError(f"cannot find the session of worker {pid}")
    logs = os.path.join(session, "logs")
    req = os.path.join(logs, f"profile-{pid}.req")
    out = os.path.join(logs, f"profile-{pid}.json")
    for p in (out,):
        if os.path.exists(p):
            os.unlink(p)
    with open(req, "w") as f:
        json.dump({"duration": duration, "interval": interval}, f)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + duration + 10
    while not os.path.exists(out):
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker {pid} gave no profile within {duration + 10:g} s (is it stuck in C code?)")
        time.sleep(0.1)
    with open(out) as f:
        data = json.load(f)
    for p in (req, out):
        if os.path.exists(p):
            os.unlink(p)
    return Profile(pid, dict(data["folded"]), int(data["samples"]), int(data["idle"]), float(data["duration"]),
                   what or f"worker pid {pid}", float(data.get("tick_s", 0.01)))


__all__ = ["Profile", "profile"]
