"""The Jupyter server extension: the notebook server owns (or attaches) the cluster.

Enabled on install (``etc/jupyter/jupyter_server_config.d/jray.json``); in
a development checkout pass ``--ServerApp.jpserver_extensions={"jray.jupyter.serverext": True}``.

- ``app.py``: ``JrayExtension``, the configuration (``mode`` start | attach |
  none, the local head's resources) and the start/stop hooks.
- ``cluster.py``: ``ServerCluster``, the cluster the server started or
  attached to, and the environment kernels inherit (``JRAY_ADDRESS``,
  ``JRAY_TOKEN``, ``JRAY_DASHBOARD_URL``) so a bare ``jray.init()`` attaches.
- ``handlers.py``: under the server's base URL, behind Jupyter's auth:

  ================================  =========================================
  ``GET  jray/api/status``          mode, address, resource totals, page links
  ``GET  jray/api/nodes``           nodes (``jray.util.state.list_nodes``)
  ``POST jray/api/nodes``           add a local worker node
  ``DELETE jray/api/nodes[/<id>]``  remove a worker node this server added
  ``GET  jray/api/tasks``           ``summarize_tasks`` and counts by state
  ``POST jray/api/start``           start a local head
  ``POST jray/api/stop``            stop the head this server started
  ``POST jray/api/attach``          attach to ``{address, token}`` (a remote
                                    cluster too: the sidebar's connect form)
  ``POST jray/api/detach``          forget the attached cluster, restore the env
  ``GET  jray/api/jobs[/<id>]``     submitted jobs (``JobSubmissionClient``)
  ``GET  jray/api/jobs/<id>/logs``  the job's log from ``?offset=N`` to its end
  ``POST jray/api/jobs/<id>/stop``  stop a job (as ``jray job stop``)
  ``GET  jray/views/<name>``        dashboard page (``task_stream``, ``object_store``)
  ``GET  jray/api/views/<name>``    the page's data as JSON (what it polls)
  ================================  =========================================

The JupyterLab sidebar (``extension/``, prebuilt in ``jray/labextension/``)
is a client of this API.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from jray.jupyter.serverext.app import JrayExtension

    return [{"module": "jray.jupyter.serverext", "app": JrayExtension}]
