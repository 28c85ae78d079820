"""Jobs: programs submitted to a cluster, run there as supervised drivers.

Where the job manager lives, and why: in a small *job agent* process on the
head (``python -m jray.dashboard.agent``), started by ``jray start --head``
next to the GCS supervisor and stopped by ``jray stop`` (it records itself
in ``<session>/job_agent.json``; it also exits when the GCS supervisor it
watches is gone). Not inside the GCS, so a job agent that misbehaves (a
runaway log, a slow runtime_env set-up, an HTTP client that hangs) cannot
stall the cluster's control plane, and so the GCS can restart (fault
tolerance) without taking the running drivers with it: their parent is the
agent. Not inside the head raylet for the same reason, and because the
raylet is per node while the jobs API is per cluster. The agent talks to the
GCS like any client (gRPC, the cluster token, calls retried over a GCS
restart), keeps every job record in the GCS KV (namespace ``jobs``: they
outlive the agent and, with the GCS's tables persisted, a GCS restart), and
serves Ray's REST API under ``/api/jobs/`` (``http_api.py``) on the head's
address, port 8265 by default, behind the cluster token.

- ``manager.py``: the records (PENDING, RUNNING, then STOPPED, SUCCEEDED or
  FAILED), the entrypoint's process (``sh -c ENTRYPOINT`` in a session of
  its own, in the job's runtime_env as the node's ``RuntimeEnvAgent`` sets
  it up: working_dir as cwd, env_vars, a pip venv first on PATH), its log
  (rotated past a size cap), stop (SIGTERM to the group, SIGKILL after a
  grace), retention of finished jobs.
- jobs with entrypoint resources run in an ``EntrypointRunner`` actor
  holding them, wherever the scheduler places it, and the head's
  dashboard pages: both stand on the public API, so they live a layer up
  (``jray.dashboard``, whose ``agent.py`` is the process's entry point and
  hands them to this package's ``main``).
- ``http_api.py``: a small asyncio HTTP/1.1 server (stdlib only) and the
  routes.
- ``__main__.py``: the agent process; ``process.py``: starting and stopping
  it from ``jray start``/``jray stop``.
- ``common.py``: what the agent, the SDK (``jray.job_submission``) and the
  state API share: statuses, KV keys, limits.

The driver the entrypoint starts finds the cluster in ``JRAY_ADDRESS`` and
``JRAY_TOKEN``; ``JRAY_JOB_CONFIG_JSON`` carries the job's runtime_env
(made the job-level default of its ``jray.init()``) and its submission id,
which the driver records in the KV (``driver/<job id>/<submission id>``) so
the state API can show which GCS job belongs to which submission. Stopping
the entrypoint's process group ends the driver; the GCS's fate-sharing then
ends its tasks and non-detached actors.
"""
