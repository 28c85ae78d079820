"""Messages on the log stream: the envelope both ends agree on.

A worker (or a raylet) has one ordered channel to a task's owner: the
forwarded output lines (``LogBatch`` over ``PublishLogs``). A message that
is not plain text — a display, a progress bar — travels as one such line:
``MARK`` followed by JSON. The notebook layer (``jray.jupyter.wire``,
``routing``) turns messages into Jupyter displays in the submitting cell; a
plain driver prints a closed progress line's text and drops the rest.
"""

from __future__ import annotations

import json
from typing import Any

MARK = "\x1ejray-msg:"
# Larger payloads (a huge figure) are replaced by a short note: one log line
# must stay small enough not to stall the stream behind it.
MAX_BYTES = 8 * 1024 * 1024


def encode(msg: dict[str, Any]) -> str:
    text = MARK + json.dumps(msg, separators=(",", ":"), default=str)
    if len(text) > MAX_BYTES:
        note = {"kind": "display", "data": {"text/plain": f"<output of {len(text)} bytes not sent: over the "
                                                           f"{MAX_BYTES // 2**20} MiB limit>"}, "metadata": {}}
        text = MARK + json.dumps(note)
    return text


def decode(text: str) -> dict[str, Any] | None:
    """The message in a forwarded line, or None for a plain line."""
    if not text.startswith(MARK):
        return None
    try:
        msg = json.loads(text[len(MARK):])
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None
