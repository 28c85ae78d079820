"""A real Jupyter kernel driven over jupyter_client, recording every output
message under the cell (parent message) it belongs to, with its arrival
time, so tests can check where and when output landed."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any

from jupyter_client.manager import KernelManager

OUTPUT_TYPES = ("stream", "display_data", "update_display_data", "execute_result", "error")


@dataclass
class Cell:
    kernel: Kernel
    msg_id: str
    reply: dict[str, Any]
    started: float
    finished: float  # when the kernel went idle after it

    @property
    def outputs(self) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.kernel.by_parent.get(self.msg_id, []) if m["msg_type"] in OUTPUT_TYPES]

    def text(self, name: str | None = None) -> str:
        return "".join(m["content"]["text"] for _, m in self.outputs
                       if m["msg_type"] == "stream" and (name is None or m["content"]["name"] == name))

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for _, m in self.outputs if m["msg_type"] in types]

    def first_time(self, needle: str) -> float | None:
        for t, m in self.outputs:
            if m["msg_type"] == "stream" and needle in m["content"]["text"]:
                return t
        return None

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    @property
    def ename(self) -> str | None:
        errs = self.of_type("error")
        return errs[0]["content"]["ename"] if errs else None


class Kernel:
    def __init__(self, cwd: str, timeout: float = 60) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=timeout)
        self.by_parent: dict[str, list[tuple[float, dict[str, Any]]]] = {}

    def _pump(self, timeout: float) -> dict[str, Any] | None:
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None
        self.by_parent.setdefault(msg["parent_header"].get("msg_id", ""), []).append((time.monotonic(), msg))
        return msg  # type: ignore[no-any-return]

    def run(self, code: str, timeout: float = 30, interrupt_after: float | None = None,
            stdin: list[str] | None = None) -> Cell:
        """Execute ``code`` and collect its output until the kernel is idle
        again. ``stdin``: answers to the cell's ``input()`` requests, in
        order (the prompts are kept in ``self.input_prompts``)."""
        started = time.monotonic()
        answers = list(stdin or [])
        self.input_prompts: list[str] = []
        msg_id = self.kc.execute(code, allow_stdin=stdin is not None)
        deadline = started + timeout
        interrupted = interrupt_after is None
        while True:
            if stdin is not None:
                try:
                    req = self.kc.get_stdin_msg(timeout=0)
                except queue.Empty:
                    req = None
                if req is not None and req["msg_type"] == "input_request":
                    self.input_prompts.append(req["content"]["prompt"])
                    self.kc.input(answers.pop(0) if answers else "\x04")  # past the answers: EOF
            if not interrupted and time.monotonic() - started >= interrupt_after:  # type: ignore[operator]
                self.km.interrupt_kernel()
                interrupted = True
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell did not finish within {timeout} s: {code[:80]!r}")
            msg = self._pump(0.05)
            if (msg is not None and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                    and msg["parent_header"].get("msg_id") == msg_id):
                break
        finished = time.monotonic()
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        return Cell(self, msg_id, reply, started, finished)

    def wait_for(self, cell: Cell, needle: str, timeout: float = 15) -> None:
        """Collect output until ``needle`` shows up in ``cell``'s text (it may come late)."""
        end = time.monotonic() + timeout
        while needle not in cell.text():
            if time.monotonic() > end:
                raise TimeoutError(f"{needle!r} never reached the cell; it has {cell.text()!r}")
            self._pump(0.05)

    def drain(self, seconds: float) -> None:
        """Collect late output for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._pump(0.05)

    def shutdown(self) -> None:
        try:
            self.run("import jray; jray.shutdown()", timeout=30)
        finally:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=False)
