"""The extension's HTTP handlers, all under the server's base URL and behind
Jupyter's own authentication (the token or login of the server, JupyterHub's
OAuth behind a hub): ``jray/api/...`` answers JSON, ``jray/views/...`` the
dashboard pages.

Blocking work (state API calls over gRPC, starting daemons) runs in a thread
so the server's event loop stays free.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join

from jray.jupyter.serverext.cluster import ClusterError, ServerCluster

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _blocking(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


class _Base(APIHandler):
    @property
    def cluster(self) -> ServerCluster:
        return self.settings["jray_cluster"]  # type: ignore[no-any-return]

    @property
    def ext(self) -> Any:
        return self.settings["jray_extension"]

    def _state(self) -> dict[str, Any]:
        c = self.cluster
        return {"address": c.address, "token": c.token}

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    async def run(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` in a thread; a ClusterError answers its status, a failed
        state call 503 (the cluster went away)."""
        try:
            return await _blocking(fn)
        except ClusterError as e:
            raise tornado.web.HTTPError(e.status, str(e)) from None
        except (ConnectionError, RuntimeError, OSError) as e:
            raise tornado.web.HTTPError(503, f"jray cluster unavailable: {e}") from None

    def require_running(self) -> None:
        if not self.cluster.running:
            raise tornado.web.HTTPError(409, "no jray cluster is running (POST jray/api/start)")


def cluster_summary(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the live nodes (``list_nodes(detail=True)`` rows)."""
    alive = [n for n in nodes if n["state"] == "ALIVE"]
    total: dict[str, float] = {}
    avail: dict[str, float] = {}
    for n in alive:
        for k, v in n["resources_total"].items():
            if not k.startswith("node:"):
                total[k] = total.get(k, 0.0) + v
        for k, v in n["resources_available"].items():
            if not k.startswith("node:"):
                avail[k] = avail.get(k, 0.0) + v
    return {"nodes_alive": len(alive), "nodes_dead": len(nodes) - len(alive),
            "resources_total": total, "resources_available": avail,
            "object_store_memory": sum(n["object_store_memory"] for n in alive),
            "object_store_used": sum(n["object_store_used"] for n in alive),
            "spilled_bytes": sum(n["spilled_bytes"] for n in alive),
            "num_workers": sum(n["num_workers"] for n in alive)}


class StatusHandler(_Base):
    """GET ``jray/api/status``: mode, address, whether this server owns the
    cluster, resource totals, links to the pages and the ``jray.init()``
    snippet for notebooks."""

    @tornado.web.authenticated
    async def get(self) -> None:
        c = self.cluster
        body: dict[str, Any] = {"mode": self.ext.mode, **c.describe(), "state": "stopped",
                                "configured_address": self.ext.address,
                                "views": {name: self.ext.view_url(name) for name in _page_names()},
                                "snippet": snippet(c.address)}
        if c.last_error:
            body["error"] = c.last_error
        if c.running:
            from jray.util.state import list_nodes

            st = self._state()
            try:
                nodes = await _blocking(lambda: list_nodes(detail=True, limit=0, **st))
                body.update(cluster_summary(nodes), state="running", remote=is_remote(nodes))
            except Exception as e:  # the cluster went away: report it, do not fail the poll
                body.update(state="unreachable", error=str(e))
        self.reply(body)


def is_remote(nodes: list[dict[str, Any]]) -> bool:
    """No live node of the cluster runs on this machine (the kernels connect as clients)."""
    from jray._private import node as _node

    local = _node.local_ip_addresses()
    return not any(n["node_ip"] in local or n["node_ip"].startswith("127.") for n in nodes if n["state"] == "ALIVE")


def snippet(address: str) -> str:
    where = f" at {address}" if address else ""
    return ("import jray\n\n"
            f"jray.init()  # attaches to this Jupyter server's jray cluster{where} (JRAY_ADDRESS)\n")


class NodesHandler(_Base):
    """GET ``jray/api/nodes``: every node (``list_nodes`` rows, plus
    ``added_by_server``); POST adds a local worker node (body
    ``{"num_cpus": N}``, else ``JrayExtension.worker_num_cpus``); DELETE
    ``jray/api/nodes[/<node_id>]`` removes one this server added (the newest
    without an id)."""

    @tornado.web.authenticated
    async def get(self, node_id: str = "") -> None:
        self.require_running()
        from jray.util.state import list_nodes

        st = self._state()
        nodes = await self.run(lambda: list_nodes(detail=True, limit=0, **st))
        added = set(self.cluster.workers_ids())
        for n in nodes:
            n["added_by_server"] = n["node_id"] in added
        if node_id:
            nodes = [n for n in nodes if n["node_id"] == node_id]
            if not nodes:
                raise tornado.web.HTTPError(404, f"no node {node_id}")
            self.reply(nodes[0])
            return
        self.reply({"nodes": nodes})

    @tornado.web.authenticated
    async def post(self, node_id: str = "") -> None:
        if node_id:
            raise tornado.web.HTTPError(405)
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, 'the body must be JSON: {"num_cpus": N} or empty') from None
        num_cpus = body.get("num_cpus") if isinstance(body, dict) else None
        node = await self.run(lambda: self.cluster.add_node(num_cpus))
        self.reply({"node_id": node.node_id, "raylet_address": node.raylet_address}, 201)

    @tornado.web.authenticated
    async def delete(self, node_id: str = "") -> None:
        removed = await self.run(lambda: self.cluster.remove_node(node_id or None))
        self.reply({"removed": removed})


class TasksHandler(_Base):
    """GET ``jray/api/tasks``: ``summarize_tasks`` plus counts by state."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.require_running()
        from jray.util.state import summarize_tasks

        st = self._state()
        summary = await self.run(lambda: summarize_tasks(**st))
        by_state: dict[str, int] = {}
        for entry in summary["cluster"]["summary"].values():
            for state, n in entry["state_counts"].items():
                by_state[state] = by_state.get(state, 0) + n
        summary["by_state"] = by_state
        self.reply(summary)


class AutoscalerHandler(_Base):
    """GET ``jray/api/autoscaler``: ``{"status": ...}``, the autoscaler's
    published status (``jray.autoscaler.sdk.get_status``: nodes launching,
    running and idle by type, ``node_types`` with their limits and pinned
    targets, pending demand, decisions, failures), ``null`` when the cluster
    has none. POST ``jray/api/autoscaler/scale`` with ``{"node_type": T,
    "count": N}`` pins a type to N nodes (``sdk.scale_to``; ``"count":
    null`` hands it back to the demand): 400 for an unknown type or a count
    past its ``max_workers``, 409 when no autoscaler runs."""

    @tornado.web.authenticated
    async def get(self, action: str = "") -> None:
        if action:
            raise tornado.web.HTTPError(405)
        self.require_running()
        from jray._private import autoscaler_state

        st = self._state()
        status = await self.run(lambda: autoscaler_state.read_status_at(st["address"], st["token"]))
        self.reply({"status": status})

    @tornado.web.authenticated
    async def post(self, action: str = "") -> None:
        if action != "scale":
            raise tornado.web.HTTPError(404, "POST jray/api/autoscaler/scale")
        self.require_running()
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, 'the body must be JSON: {"node_type": ..., "count": ...}') from None
        if not isinstance(body, dict) or not isinstance(body.get("node_type"), str) or "count" not in body:
            raise tornado.web.HTTPError(400, 'the body must be {"node_type": "<type>", "count": <n> or null}')
        count = body["count"]
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise tornado.web.HTTPError(400, f"count must be a non-negative integer or null, got {count!r}")
        from jray.autoscaler import sdk

        st = self._state()
        try:
            targets = await _blocking(lambda: sdk.scale_to(body["node_type"], count, address=st["address"],
                                                           token=st["token"]))
        except ValueError as e:
            raise tornado.web.HTTPError(400, str(e)) from None
        except RuntimeError as e:
            raise tornado.web.HTTPError(409, str(e)) from None
        except (ConnectionError, OSError) as e:
            raise tornado.web.HTTPError(503, f"jray cluster unavailable: {e}") from None
        self.reply({"scale_targets": targets})


# -- jobs ------------------------------------------------------------------------

LOG_MAX_BYTES = 64 * 1024  # what a log read answers at most by default: the end of a long log


class JobClients:
    """The ``JobSubmissionClient`` of the current cluster, kept across polls
    (making one looks the jobs API up in the cluster's KV and asks its
    version) and made again after a failure to reach it (the agent may have
    restarted elsewhere) or for another cluster. The token is the cluster's:
    this server's ``JRAY_TOKEN`` while it uses a cluster."""

    TIMEOUT_S = 15.0  # a hung agent answers 503 within this, not a poll stuck for a minute

    def __init__(self) -> None:
        self._client: Any = None
        self._key = ("", "")
        self._lock = threading.Lock()

    def call(self, address: str, token: str, fn: Callable[[Any], T]) -> T:
        from jray.jupyter import jobs

        with self._lock:
            if self._client is None or self._key != (address, token):
                self._client, self._key = None, (address, token)
                self._client = jobs.client(address, timeout=self.TIMEOUT_S)
            c = self._client
        try:
            return fn(c)
        except (ConnectionError, OSError):
            with self._lock:
                if self._client is c:
                    self._client = None
            raise


class _JobsBase(_Base):
    async def jobs_call(self, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` in a thread against the cluster's jobs API: 409 when
        no cluster runs, the API's own status and message for a refused
        request (404: no such job), 503 when the API cannot be reached (no
        agent, agent down, refused token)."""
        from jray.job_submission import JobRequestError

        self.require_running()
        c, clients = self.cluster, self.settings["jray_jobs"]
        address, token = c.address, c.token
        try:
            return await _blocking(lambda: clients.call(address, token, fn))
        except JobRequestError as e:
            if 400 <= e.status_code < 500:
                raise tornado.web.HTTPError(e.status_code, e.reason) from None
            raise tornado.web.HTTPError(503, f"the cluster's jobs API failed: {e}") from None
        except (ConnectionError, RuntimeError, OSError) as e:  # PermissionError (a refused token) is an OSError
            raise tornado.web.HTTPError(503, f"the cluster's jobs API is unavailable: {e}") from None


class JobsHandler(_JobsBase):
    """GET ``jray/api/jobs``: the jobs submitted to the cluster (``jray job
    submit``, ``JobSubmissionClient``), newest first: ``{"jobs": [...],
    "address": <jobs API>, "now": <ms>}`` (``now``: the server's clock, for
    durations). GET ``jray/api/jobs/<id>``: one job (404 if unknown)."""

    @tornado.web.authenticated
    async def get(self, submission_id: str = "") -> None:
        from jray.jupyter import jobs

        if submission_id:
            job = await self.jobs_call(lambda c: jobs.job_summary(c.get_job_info(submission_id)))
            self.reply(job)
            return
        listed = await self.jobs_call(lambda c: (jobs.list_job_summaries(c), c.address))
        self.reply({"jobs": listed[0], "address": listed[1], "now": int(time.time() * 1000)})


class JobLogsHandler(_JobsBase):
    """GET ``jray/api/jobs/<id>/logs?offset=N&max_bytes=M``: the job's log from
    byte N (default 0) to its end now, at most the last M characters
    (default 64 KiB, at most 1 MiB): ``{"logs", "offset"`` (pass it back
    next time), ``"terminal"`` (the job ended and all was read),
    ``"status", "truncated"}``. 400 for a bad N or M, 404 for an unknown id."""

    @tornado.web.authenticated
    async def get(self, submission_id: str) -> None:
        from jray.jupyter import jobs

        try:
            offset = int(self.get_query_argument("offset", "0"))
            max_bytes = int(self.get_query_argument("max_bytes", str(LOG_MAX_BYTES)))
        except ValueError:
            raise tornado.web.HTTPError(400, "offset and max_bytes must be whole numbers") from None
        if offset < 0 or not 0 < max_bytes <= 1 << 20:
            raise tornado.web.HTTPError(400, "offset must be 0 or more, max_bytes between 1 and 1048576")
        chunk = await self.jobs_call(lambda c: jobs.read_log(c, submission_id, offset, max_bytes))
        self.reply(chunk)


class JobStopHandler(_JobsBase):
    """POST ``jray/api/jobs/<id>/stop``: stop the job (as ``jray job stop``:
    SIGTERM, SIGKILL after the grace period): ``{"stopped": false}`` when it
    had already ended, and the job as it is now; 404 for an unknown id."""

    @tornado.web.authenticated
    async def post(self, submission_id: str) -> None:
        from jray.jupyter import jobs

        def stop(c: Any) -> dict[str, Any]:
            stopped = bool(c.stop_job(submission_id))
            return {"stopped": stopped, "job": jobs.job_summary(c.get_job_info(submission_id))}

        self.reply(await self.jobs_call(stop))


class StartHandler(_Base):
    """POST ``jray/api/start``: start a local head with the configured resources."""

    @tornado.web.authenticated
    async def post(self) -> None:
        await self.run(self.cluster.start)
        self.reply(self.cluster.describe(), 201)


class AttachHandler(_Base):
    """POST ``jray/api/attach`` with ``{"address": "HOST:PORT", "token": "..."}``
    (the sidebar's connect form): use the cluster there, on this machine or
    another, for every kernel started from now on (a bare ``jray.init()``
    connects to it, as a client where no node of it runs here). The head is
    checked first: an address that does not answer or is not one (400), a
    token it refuses (403), another jray version (400) answer jray's message
    and change nothing. A cluster this server attached to before is replaced;
    one it started must be stopped first (409)."""

    @tornado.web.authenticated
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, "the body must be JSON: {\"address\": ..., \"token\": ...}") from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "the body must be a JSON object")
        address, token = body.get("address") or "", body.get("token") or ""
        if not isinstance(address, str) or not isinstance(token, str):
            raise tornado.web.HTTPError(400, "address and token must be strings")
        if not address.strip():
            raise tornado.web.HTTPError(400, "no address: give the cluster's HOST:PORT (JRAY_ADDRESS)")
        c = self.cluster
        await self.run(lambda: c.attach(address, token, replace=True))
        self.reply(c.describe(), 201)


class DetachHandler(_Base):
    """POST ``jray/api/detach``: forget the attached cluster (left running;
    nodes this server added to it are stopped); kernels started from now on
    get the server's previous environment. 409 for a cluster this server
    started (``jray/api/stop``) or when none is attached."""

    @tornado.web.authenticated
    async def post(self) -> None:
        c = self.cluster
        await self.run(c.detach)
        self.reply(c.describe())


class StopHandler(_Base):
    """POST ``jray/api/stop``: stop the head this server started (and its added
    nodes); refused (409) for a cluster the server attached to."""

    @tornado.web.authenticated
    async def post(self) -> None:
        c = self.cluster
        if not c.running:
            raise tornado.web.HTTPError(409, "no jray cluster is running")
        if not c.owned:
            raise tornado.web.HTTPError(409, f"the cluster at {c.address} was not started by this server; "
                                             "stop it where it was started ('jray stop')")
        await self.run(c.stop)
        self.reply(c.describe())


# -- dashboard pages -----------------------------------------------------------


class ViewCache:
    """One view object per page name for the current cluster (a view keeps
    history, e.g. store use over time, so it lives across polls)."""

    def __init__(self) -> None:
        self._views: dict[str, Any] = {}
        self._key = ""
        self._lock = threading.Lock()

    def data(self, name: str, address: str, token: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """The page's poll: ``view.page_data(params)`` (``params``: its query, for the logs page)."""
        from jray.jupyter.views import pages

        with self._lock:
            if self._key != address:
                self._views.clear()
                self._key = address
            view = self._views.get(name)
            if view is None:
                view = self._views[name] = pages.make_view(name, address=address, token=token)
        return view.page_data(params or {})  # type: ignore[no-any-return]


def _page_names() -> list[str]:
    try:
        from jray.jupyter.views import pages
    except ImportError:  # the views need bokeh (the [notebook]/[server] extras)
        return []
    return list(pages.VIEWS)


def _page_titles() -> dict[str, str]:
    from jray.jupyter.views import pages

    return dict(pages.TITLES)


class ViewDataHandler(_Base):
    """GET ``jray/api/views/<name>``: the view's sources as JSON
    (``{source: {column: [...]}}``), refreshed from the state API; the
    query's arguments go to the view (the logs page's ``node_id``, ``pid``,
    ``file``, ``tail``)."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        if name not in _page_names():
            raise tornado.web.HTTPError(404, f"no view {name!r}")
        self.require_running()
        c, cache = self.cluster, self.settings["jray_views"]
        params = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        data = await self.run(lambda: cache.data(name, c.address, c.token, params))
        self.reply(data)


class ViewPageHandler(JupyterHandler):
    """GET ``jray/views/<name>``: the standalone page (BokehJS inlined) that polls
    ``jray/api/views/<name>``; ``jray/views/`` lists the pages."""

    @tornado.web.authenticated
    def get(self, name: str = "") -> None:
        names = _page_names()
        base = self.settings["base_url"]
        if not name:
            titles = _page_titles()
            links = "".join(f"<li><a href='{html.escape(url_path_join(base, 'jray/views', n))}'>"
                            f"{html.escape(titles.get(n, n))}</a></li>" for n in names)
            self.finish(f"<!doctype html><html><head><meta charset='utf-8'><title>jray dashboard</title></head>"
                        f"<body><h2>jray dashboard</h2><ul>{links}</ul></body></html>")
            return
        if name not in names:
            raise tornado.web.HTTPError(404, f"no view {name!r}")
        from jray.jupyter.views import pages

        data_url = url_path_join(base, "jray/api/views", name)
        try:  # ?theme=dark: the sidebar opens the pages in the Lab theme's colours
            html_page = pages.page_html(name, data_url, theme=self.get_argument("theme", None))
        except ValueError as e:
            raise tornado.web.HTTPError(400, str(e)) from None
        self.finish(html_page)


def handlers() -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    """URL patterns relative to the base URL (the ExtensionApp prepends it)."""
    return [
        (r"/jray/api/status", StatusHandler),
        (r"/jray/api/nodes/?", NodesHandler),
        (r"/jray/api/nodes/([0-9a-f]+)", NodesHandler),
        (r"/jray/api/tasks", TasksHandler),
        (r"/jray/api/autoscaler/?", AutoscalerHandler),
        (r"/jray/api/autoscaler/(\w+)", AutoscalerHandler),
        (r"/jray/api/jobs/?", JobsHandler),
        (r"/jray/api/jobs/([^/]+)/logs", JobLogsHandler),
        (r"/jray/api/jobs/([^/]+)/stop", JobStopHandler),
        (r"/jray/api/jobs/([^/]+)/?", JobsHandler),
        (r"/jray/api/start", StartHandler),
        (r"/jray/api/stop", StopHandler),
        (r"/jray/api/attach", AttachHandler),
        (r"/jray/api/detach", DetachHandler),
        (r"/jray/api/views/(\w+)", ViewDataHandler),
        (r"/jray/views/?", ViewPageHandler),
        (r"/jray/views/(\w+)", ViewPageHandler),
    ]
