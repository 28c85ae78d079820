"""``jray.widgets``: the widgets' public name, an alias of ``jray.jupyter.widgets``.

``ClusterMonitor`` moved to ``jray/jupyter/widgets.py`` beside the rest of the
notebook code; importing this module puts that one in its place in
``sys.modules``, so ``jray.widgets is jray.jupyter.widgets``.
"""

from __future__ import annotations

import sys

from jray.jupyter import widgets as _widgets

sys.modules[__name__] = _widgets
