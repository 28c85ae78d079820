"""``JrayExtension``: the Jupyter server extension's configuration and lifecycle.

Configure it like any Jupyter app (``jupyter_server_config.py``, or the
command line)::

    c.JrayExtension.mode = "start"          # or "attach", "none"
    c.JrayExtension.num_cpus = 4
    c.JrayExtension.object_store_memory = 2 * 1024**3
    c.JrayExtension.namespace = "jupyter"   # the kernels' namespace ("" = one per kernel's job)
    # jupyter lab --JrayExtension.mode=attach --JrayExtension.address=10.0.0.5:6380

The cluster attached to may run on other machines (``address`` and
``token`` as ``jray start --head`` printed them): every kernel's bare
``jray.init()`` then connects to it as a client. The sidebar's connect form
(``POST jray/api/attach``) does the same at run time, and its Disconnect
(``POST jray/api/detach``) gives the kernels back the server's environment.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Dict, Enum, Float, Int, Unicode

from jray.jupyter.serverext import handlers
from jray.jupyter.serverext.cluster import ClusterError, HeadOptions, ServerCluster


class JrayExtension(ExtensionApp):
    """Starts or attaches the server's jray cluster, hands it to kernels, serves
    the REST API and the dashboard pages."""

    name = "jray"
    load_other_extensions = True

    mode = Enum(["start", "attach", "none"], default_value="start", config=True,
                help="""What to do when the server starts: 'start' a local jray head (stopped with
                the server), 'attach' to the running cluster at `address` (left running), or 'none'
                (the sidebar's Start button can still start a local head).""")
    address = Unicode("", config=True,
                      help="""GCS address HOST:PORT of the cluster to attach to in mode 'attach'; 'auto' or
                      empty: JRAY_ADDRESS, else the address file written by 'jray start --head'.""")
    token = Unicode("", config=True,
                    help="""Token of the cluster to attach to; empty: JRAY_TOKEN, else the address file's
                    when it names the same cluster.""")
    tls_dir = Unicode("", config=True,
                      help="""A copy of the TLS directory of a cluster started with 'jray start --head --tls'
                      (JRAY_TLS_DIR for this server and its kernels): needed to attach to such a cluster.
                      Empty: the server's JRAY_TLS_DIR / JRAY_USE_TLS settings, if any.""")
    num_cpus = Float(None, allow_none=True, config=True,
                     help="CPUs of the local head (default: the machine's count).")
    num_gpus = Float(None, allow_none=True, config=True,
                     help="GPUs of the local head (default: those detected).")
    resources = Dict(value_trait=Float(), default_value={}, config=True,
                     help="Custom resources of the local head, e.g. {'accelerator': 1}.")
    object_store_memory = Int(None, allow_none=True, config=True,
                              help="Bytes of the local head's /dev/shm object store (default: 30% of RAM, "
                                   "capped by /dev/shm's free space).")
    worker_num_cpus = Float(1.0, config=True,
                            help="CPUs of each local worker node added from the REST API or the sidebar.")
    worker_object_store_memory = Int(None, allow_none=True, config=True,
                                     help="Object store bytes of each added worker node (default: as the head's "
                                          "default).")
    namespace = Unicode("jupyter", config=True,
                        help="""Namespace of the notebooks' jobs (JRAY_NAMESPACE for the kernels): their named
                        and detached actors are found by name from any notebook, and by a notebook again after
                        its kernel restarts. Empty: each kernel's job gets an anonymous namespace, as in Ray.""")
    max_worker_nodes = Int(4, config=True,
                           help="Most local worker nodes this server adds (POST jray/api/nodes).")

    cluster: ServerCluster | None = None

    def view_url(self, name: str = "") -> str:
        """The page's path under the server's base URL (``jray/views/`` lists them)."""
        assert self.serverapp is not None
        return url_path_join(self.serverapp.base_url, "jray/views", name) + ("" if name else "/")

    def initialize_settings(self) -> None:
        opts = HeadOptions(num_cpus=self.num_cpus, num_gpus=self.num_gpus, resources=dict(self.resources),
                           object_store_memory=self.object_store_memory, worker_num_cpus=self.worker_num_cpus,
                           worker_object_store_memory=self.worker_object_store_memory,
                           max_worker_nodes=self.max_worker_nodes)
        assert self.serverapp is not None
        runtime_dir = self.serverapp.runtime_dir or tempfile.gettempdir()
        os.makedirs(runtime_dir, exist_ok=True)
        cluster_file = os.path.join(runtime_dir, f"jray-cluster-{os.getpid()}.json")
        self.cluster = ServerCluster(opts, dashboard_url=self.view_url(), logger=self.log, cluster_file=cluster_file)
        self.cluster.on_env_change = self._update_kernels_env
        self.settings.update(jray_cluster=self.cluster, jray_extension=self, jray_views=handlers.ViewCache(),
                             jray_jobs=handlers.JobClients())
        self._saved_namespace = os.environ.get("JRAY_NAMESPACE")
        self._saved_process_env = {k: os.environ.get(k) for k in ("JRAY_CLUSTER_FILE", "PATH")}
        # Kernels and terminals inherit both: a running kernel follows the
        # cluster through the file, and `jray` is on a terminal's PATH (the
        # environment this server runs in, a venv's bin not activated).
        os.environ["JRAY_CLUSTER_FILE"] = cluster_file
        os.environ["PATH"] = with_bin_dir(os.environ.get("PATH", ""), os.path.dirname(sys.executable))
        self.cluster.write_cluster_file()
        if self.tls_dir:  # this server's calls to the cluster and every kernel's use it
            os.environ["JRAY_TLS_DIR"] = os.path.abspath(os.path.expanduser(self.tls_dir))
        if self.namespace:  # kernels inherit the server's environment
            os.environ["JRAY_NAMESPACE"] = self.namespace
        # Synchronous on purpose: the kernels this server starts inherit the
        # address through os.environ, so the head is up before any kernel is.
        try:
            if self.mode == "start":
                self.cluster.start()
            elif self.mode == "attach":
                self.cluster.attach(self.address, self.token)
        except (ClusterError, RuntimeError, OSError, ValueError) as e:
            # The server still starts; the sidebar shows the cluster stopped, and why.
            self.log.error("jray: could not %s the cluster: %s", self.mode, e)
            self.cluster.last_error = f"could not {self.mode} the cluster: {e}"

    def _update_kernels_env(self, env: dict[str, str]) -> None:
        """Running kernels restart with the environment they first started with
        (jupyter_client keeps it): give them the cluster's new address."""
        km = getattr(self.serverapp, "kernel_manager", None)
        if km is None or not hasattr(km, "update_env"):
            return
        for kernel_id in list(km.list_kernel_ids()):
            km.update_env(kernel_id=kernel_id, env=env)

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers.handlers())

    async def stop_extension(self) -> None:
        """Stop what this server started (an attached cluster is left running)."""
        if self.cluster is not None:
            self.cluster.stop()
            with contextlib.suppress(OSError):
                os.unlink(self.cluster.cluster_file)
        for k, v in getattr(self, "_saved_process_env", {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self.namespace:
            saved = getattr(self, "_saved_namespace", None)
            if saved is None:
                os.environ.pop("JRAY_NAMESPACE", None)
            else:
                os.environ["JRAY_NAMESPACE"] = saved


def with_bin_dir(path: str, bin_dir: str) -> str:
    """``PATH`` with ``bin_dir`` first (once): the ``jray`` command of the
    Python this server runs, for its terminals and kernels' ``!jray``."""
    parts = [p for p in path.split(os.pathsep) if p and os.path.normpath(p) != os.path.normpath(bin_dir)]
    return os.pathsep.join([bin_dir, *parts])
