"""The views and widgets moved under ``jray.jupyter``; their old import paths
are aliases that give the very same module objects, and ``import jray``
still loads neither Bokeh nor ipywidgets. Each check runs in a fresh
interpreter, so what this test session imported does not count."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_import_jray_loads_no_bokeh_or_ipywidgets() -> None:
    out = _run("""
        import sys, jray
        print(sorted(m for m in sys.modules
                     if m.split('.')[0] in ('bokeh', 'ipywidgets', 'jupyter_bokeh')
                     or m.startswith(('jray.views', 'jray.widgets', 'jray.jupyter.views'))))
    """)
    assert out.strip() == "[]"


def test_old_paths_are_the_new_modules() -> None:
    out = _run("""
        import sys
        import jray
        lazy_views, lazy_widgets = jray.views, jray.widgets
        import jray.views, jray.views.pages, jray.views.task_stream, jray.views.object_store
        import jray.views._base, jray.widgets
        import jray.jupyter.views as views, jray.jupyter.widgets as widgets
        assert jray.views is views is lazy_views is sys.modules['jray.views']
        assert jray.widgets is widgets is lazy_widgets is sys.modules['jray.widgets']
        for sub in ('_base', 'pages', 'task_stream', 'object_store'):
            assert sys.modules['jray.views.' + sub] is sys.modules['jray.jupyter.views.' + sub], sub
        assert jray.views.pages is sys.modules['jray.jupyter.views.pages']
        from jray.views import ObjectStoreView, TaskStreamView, object_store, task_stream
        from jray.views.task_stream import TaskStreamView as T
        from jray.widgets import ClusterMonitor
        assert T is TaskStreamView is views.TaskStreamView
        assert ClusterMonitor is widgets.ClusterMonitor
        assert callable(task_stream) and callable(object_store)  # the functions, not the modules
        print('ok')
    """)
    assert out.strip() == "ok"


def test_status_tables_module() -> None:
    out = _run("""
        import sys
        import jray.jupyter.magics  # %jray status/nodes/dashboard draw from status
        from jray.jupyter import status
        assert callable(status.status) and callable(status.node_table)
        assert callable(status.dashboard)
        print(sorted(m for m in sys.modules if m.split('.')[0] == 'bokeh'))
    """)
    assert out.strip() == "[]"
