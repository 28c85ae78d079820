"""Ray's ``ray.util.pdb`` name for ``jray.util.rpdb`` (``set_trace``,
``post_mortem``, ``list_breakpoints``, ``attach``)."""

from jray.util.rpdb import DebuggerError, attach, list_breakpoints, post_mortem, set_trace

__all__ = ["DebuggerError", "attach", "list_breakpoints", "post_mortem", "set_trace"]
