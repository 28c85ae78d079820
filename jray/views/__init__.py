"""``jray.views``: the Bokeh views' public name, an alias of ``jray.jupyter.views``.

The views moved to ``jray/jupyter/views/`` beside the rest of the notebook
code. Importing this package puts the real one in its place in
``sys.modules`` and registers its submodules under their old names too, so
``jray.views is jray.jupyter.views`` and ``jray.views.pages is
jray.jupyter.views.pages``: one module object per file, never a second copy
with classes of its own. ``live`` is left out: the views import it only
when a widget is made, and registering it here would load jupyter_bokeh and
ipywidgets on this import (``jray.views.live`` still imports, as a copy).
"""

from __future__ import annotations

import importlib
import sys

from jray.jupyter import views as _views

for _name in ("_base", "inline", "logs", "metrics", "nodes", "object_store", "pages", "progress", "tables",
              "task_stream", "workers"):
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"{_views.__name__}.{_name}")
sys.modules[__name__] = _views
