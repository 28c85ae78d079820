"""Rich output from remote code, carried on the worker's log stream.

A worker has one channel to the driver that keeps order with its prints:
the forwarded stdout/stderr lines (``log_stream.py``). A display message
(``display(...)``, a figure, a tqdm bar update) travels as one such line:
a marker followed by JSON, so it arrives after the text printed before it
and before the task's reply. The driver's output router recognises the
marker and turns the message into a Jupyter ``display_data`` (or an update
of one) in the submitting cell.

Message kinds: ``display`` (data, metadata, display_id, update) and
``progress`` (a bar: id, n, total, desc, text, closed).
"""

from __future__ import annotations

import sys
from typing import Any

from jray._private import frontend, output_wire

# The envelope (MARK + JSON on one line) is the engine's: a raylet sends
# runtime_env set-up progress the same way.
MARK = output_wire.MARK
MAX_BYTES = output_wire.MAX_BYTES
encode = output_wire.encode
decode = output_wire.decode

# The task context of the %%remote cell running in this worker: threads the
# cell starts (tqdm monitors, user threads) have no task context of their own.
active_spec: Any = None


def emit(msg: dict[str, Any]) -> None:
    """Worker side: send ``msg`` to the driver, in order with this task's prints."""
    text = encode(msg)
    if not frontend.emit_line(text, active_spec):
        # not in a worker (tests, a local fallback): print what a terminal would show
        plain = (msg.get("data") or {}).get("text/plain") or msg.get("text")
        if plain:
            sys.stdout.write(f"{plain}\n")
