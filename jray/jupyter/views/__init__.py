"""Live Bokeh views of the cluster: the scheduler and the object store.

Users reach this package as ``jray.views`` (the lazy attribute of ``import
jray``; ``jray/views/`` is an alias of it, its home before it moved here
beside the other notebook code).

Each view (``TaskStreamView``, ``ObjectStoreView``, ``MetricsView``, ``ProgressView``, ``NodesView``) is a small component:
named ``ColumnDataSource`` objects, an ``update()`` that reads the state API
(``jray.util.state``) and nothing else, ``data()`` (the same columns as
JSON-ready dicts) and ``layout()`` (the Bokeh figures over the sources).
They are shown two ways:

- inline in a notebook: ``jray.views.task_stream()`` / ``object_store()``
  return a live widget (``live.LiveView``, a ``jupyter_bokeh.BokehModel``
  refreshed from a thread; ``.close()`` stops it; BokehJS is put into the
  page first, inlined, since the widget's view needs it);
- as full pages served by the Jupyter server extension: ``pages.py``
  (``page_html`` renders, ``page_data`` feeds the page's polling script).

Two pages are plain HTML, not Bokeh: the logs page (``LogsPage``,
``logs.py``: workers per node and a selected worker's log, tailed, with a
search box) and the tables page (``TablesPage``, ``tables.py``). Inline,
``jray.views.tables()`` / ``logs()`` show the page the server extension
serves in an iframe (``inline.py``; ``DashboardUnavailableError`` where no
jray extension serves this kernel).

Importing this package imports Bokeh; ``import jray`` does not.
"""

from __future__ import annotations

from typing import Any

try:
    import bokeh  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("jray.views draws with Bokeh: pip install 'jray[notebook]' (bokeh, jupyter_bokeh)") from e

from jray.jupyter.views._base import View
from jray.jupyter.views.logs import LogsPage
from jray.jupyter.views.metrics import MetricsView
from jray.jupyter.views.nodes import NodesView
from jray.jupyter.views.object_store import ObjectStoreView
from jray.jupyter.views.progress import ProgressView
from jray.jupyter.views.tables import TablesPage
from jray.jupyter.views.task_stream import TaskStreamView

__all__ = ["LogsPage", "MetricsView", "NodesView", "ObjectStoreView", "ProgressView", "TablesPage", "TaskStreamView",
           "View",
           "logs", "metrics", "nodes", "object_store", "progress", "tables", "task_stream"]


def task_stream(period: float = 1.0, *, address: str | None = None, token: str | None = None,
                **options: Any) -> Any:
    """The scheduler view as a live notebook widget (``options`` go to ``TaskStreamView``)."""
    from jray.jupyter.views.live import LiveView

    return LiveView(TaskStreamView(address=address, token=token, **options), period)


def object_store(period: float = 1.0, *, address: str | None = None, token: str | None = None,
                 **options: Any) -> Any:
    """The object store view as a live notebook widget (``options`` go to ``ObjectStoreView``)."""
    from jray.jupyter.views.live import LiveView

    return LiveView(ObjectStoreView(address=address, token=token, **options), period)


def metrics(period: float = 1.0, *, address: str | None = None, token: str | None = None,
            **options: Any) -> Any:
    """``ray.util.metrics`` over time as a live notebook widget (``options`` go to ``MetricsView``)."""
    from jray.jupyter.views.live import LiveView

    return LiveView(MetricsView(address=address, token=token, **options), period)


def nodes(period: float = 1.0, *, address: str | None = None, token: str | None = None,
          **options: Any) -> Any:
    """Per node CPU, memory and store over time, and worker memory, as a live
    notebook widget (``options`` go to ``NodesView``: ``window_s``, ``top``)."""
    from jray.jupyter.views.live import LiveView

    return LiveView(NodesView(address=address, token=token, **options), period)


def progress(period: float = 1.0, *, address: str | None = None, token: str | None = None,
             **options: Any) -> Any:
    """Per-function progress bars (dask's progress page) as a live notebook
    widget (``options`` go to ``ProgressView``)."""
    from jray.jupyter.views.live import LiveView

    return LiveView(ProgressView(address=address, token=token, **options), period)


def tables(tab: str = "tasks", filter: str = "", *, height: int = 520) -> Any:  # noqa: A002 - the page's word
    """The task, actor and job tables (the Ray dashboard's) inline: the page the
    Jupyter server's jray extension serves, in an iframe (``tab``: tasks,
    actors or jobs; ``filter``: the page's filter box, e.g. ``"state=FAILED"``).
    ``DashboardUnavailableError`` where no jray extension serves this kernel."""
    from jray.jupyter.views import inline

    return inline.tables(tab, filter, height=height)


def logs(pid: int | str | None = None, node_id: str = "", search: str = "", *, height: int = 520) -> Any:
    """Worker logs inline (the extension's logs page in an iframe): the workers
    per node; ``pid`` (and ``node_id``) selects a worker's log, ``search`` fills
    the search box (text or ``/regex/``). ``DashboardUnavailableError`` where
    no jray extension serves this kernel."""
    from jray.jupyter.views import inline

    return inline.logs(pid, node_id, search, height=height)
