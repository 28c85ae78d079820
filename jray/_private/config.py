"""Tunables of the engine, in one place. Environment overrides: JRAY_<NAME>."""

from __future__ import annotations

import os


def _env(name: str, default: float) -> float:
    v = os.environ.get("JRAY_" + name)
    return float(v) if v else default


# Values up to this size travel inline with the task reply / owner memory;
# larger ones go to the node's shared-memory store (Ray: 100 KiB).
MAX_INLINE_BYTES = int(_env("MAX_INLINE_BYTES", 100 * 1024))
# A leased worker with no more queued work is kept this long before it is
# returned, so a loop of synchronous calls does not pay a lease each time.
# Short: the CPU it holds is one other owners may wait for (a nested task's
# owner waits in get for leases, with its driver's next tasks behind it);
# 0.2 s held there stalled whole rounds of nested tasks. Ray holds none.
LEASE_IDLE_SECONDS = _env("LEASE_IDLE_SECONDS", 0.02)
# Tasks pushed to one leased worker before its reply comes back.
MAX_TASKS_IN_FLIGHT_PER_WORKER = int(_env("MAX_TASKS_IN_FLIGHT_PER_WORKER", 8))
# Short tasks on a worker far away (the round trip to it long next to a
# task's run) go deeper, enough to cover the round trip twice (the window
# each lease measures: task_submitter.Lease.window), up to this many.
MAX_TASKS_IN_FLIGHT_FAR = int(_env("MAX_TASKS_IN_FLIGHT_FAR", 256))
# Tasks of a function that never ran longer than this (in 3 or more runs)
# are pushed a full window deep to each leased worker.
SHORT_TASK_SECONDS = _env("SHORT_TASK_SECONDS", 0.002)
# A window pushed that way with no answer after this long was a wrong guess:
# the tasks not started yet are taken back and spread over other workers.
SHORT_TASK_CHECK_SECONDS = _env("SHORT_TASK_CHECK_SECONDS", 0.05)
# A task whose arguments in one node's store add up to this much is leased
# on that node (locality), as in Ray.
LOCALITY_MIN_BYTES = int(_env("LOCALITY_MIN_BYTES", 1024 * 1024))
# Concurrent lease requests per scheduling key.
MAX_PENDING_LEASE_REQUESTS = int(_env("MAX_PENDING_LEASE_REQUESTS", 8))
# Ray's hybrid scheduling: a node busier than this (the share of the demanded
# resources in use) sends default-strategy work to a less loaded node.
SCHEDULER_SPREAD_THRESHOLD = _env("SCHEDULER_SPREAD_THRESHOLD", 0.5)
# Raylets look this often for a change to report to the GCS (resources,
# load, workers, objects: sent at once), and the GCS sends each raylet the
# nodes that changed at most this often (gcs/cluster_view.py).
HEARTBEAT_SECONDS = _env("HEARTBEAT_SECONDS", 0.25)
# A raylet with nothing new beats this often (its id only: its liveness),
# and sends its full report (the machine's CPU and memory) this often.
LIVENESS_SECONDS = _env("LIVENESS_SECONDS", 1.0)
NODE_REPORT_SECONDS = _env("NODE_REPORT_SECONDS", 2.0)
# A node whose heartbeats stop for this long is declared dead (its tasks
# retried, its actors restarted, owners told at once). Ray's knobs work too:
# JRAY_HEALTH_CHECK_PERIOD_MS x JRAY_HEALTH_CHECK_FAILURE_THRESHOLD.
_HC_PERIOD_MS, _HC_THRESHOLD = _env("HEALTH_CHECK_PERIOD_MS", 0.0), _env("HEALTH_CHECK_FAILURE_THRESHOLD", 0.0)
NODE_DEATH_SECONDS = _env("NODE_DEATH_SECONDS",
                          _HC_PERIOD_MS / 1000 * _HC_THRESHOLD if _HC_PERIOD_MS and _HC_THRESHOLD else 5.0)
# A raylet whose GCS has not answered for this long exits (stopping its
# workers, removing its store), as Ray's raylets do after
# gcs_rpc_server_reconnect_timeout_s (60 s).
GCS_LOST_SECONDS = _env("GCS_LOST_SECONDS", 60.0)
# Drivers beat to the GCS this often; a driver silent for DRIVER_TIMEOUT_SECONDS
# (a host that vanished without closing its connection) has its job ended.
DRIVER_HEARTBEAT_SECONDS = _env("DRIVER_HEARTBEAT_SECONDS", 1.0)
# At interpreter exit a driver waits this long for the tasks it submitted
# (their output still reaches it, as in Ray).
EXIT_DRAIN_SECONDS = _env("EXIT_DRAIN_SECONDS", 2.0)
# init() that started its cluster waits at most this long for the node's
# first worker to register (then the first task finds it warm).
INIT_WORKER_WAIT_SECONDS = _env("INIT_WORKER_WAIT_SECONDS", 5.0)
# A worker whose lease owner died gets SIGTERM (to send what it buffered)
# and SIGKILL this long after, if it is still there.
FATE_SHARING_GRACE_SECONDS = _env("FATE_SHARING_GRACE_SECONDS", 1.0)
DRIVER_TIMEOUT_SECONDS = _env("DRIVER_TIMEOUT_SECONDS", 30.0)
IDLE_WORKER_KILL_SECONDS = _env("IDLE_WORKER_KILL_SECONDS", 30.0)
# Workers a node starts before any task asks (at most its CPUs): one, so the
# first task finds it warm; the rest are forked from the zygote when work
# comes (a few ms each), not kept idle from the start (Ray prestarts one per
# CPU: ~14 MB each here, and idle workers are a memory complaint of Ray's
# users, ray#47579). JRAY_PRESTART_WORKERS=N prestarts N.
PRESTART_WORKERS = int(_env("PRESTART_WORKERS", 1))
# An owner checks this often that the processes borrowing its objects are
# alive; one that refused connections twice in a row is taken for dead and
# its borrows dropped.
BORROWER_PROBE_SECONDS = _env("BORROWER_PROBE_SECONDS", 2.0)
# How long to wait for a daemon to come up before failing with a clear error.
STARTUP_TIMEOUT = _env("STARTUP_TIMEOUT", 30.0)
# Warn about tasks that no node can run after this long.
INFEASIBLE_WARNING_SECONDS = _env("INFEASIBLE_WARNING_SECONDS", 2.0)
OBJECT_CHUNK_BYTES = int(_env("OBJECT_CHUNK_BYTES", 4 * 1024 * 1024))
GRPC_MAX_MESSAGE = 512 * 1024 * 1024
# The direct transport (jray._private.direct) before a connection has shown
# the cluster token: a frame longer than this closes it without reading the
# body (the first frame is the token: 48 bytes); one that has not sent it
# within DIRECT_HANDSHAKE_SECONDS is closed; and a server keeps at most
# DIRECT_MAX_UNAUTHENTICATED such connections open (past it, the oldest is
# closed for the new one). Authenticated peers may send GRPC_MAX_MESSAGE.
DIRECT_PREAUTH_MAX_FRAME = int(_env("DIRECT_PREAUTH_MAX_FRAME", 8 * 1024))
DIRECT_HANDSHAKE_SECONDS = _env("DIRECT_HANDSHAKE_SECONDS", 5.0)
# gRPC servers drop a connection whose handshake (TLS, HTTP/2 preface) is not
# done within this long.
GRPC_HANDSHAKE_SECONDS = _env("GRPC_HANDSHAKE_SECONDS", 5.0)
DIRECT_MAX_UNAUTHENTICATED = int(_env("DIRECT_MAX_UNAUTHENTICATED", 64))
TOKEN_METADATA_KEY = "jray-token"
# JRAY_CLIENT_MODE=1: a driver attaching to a cluster connects as a client
# (no store mapped, objects streamed over gRPC) even on a machine that runs a
# node of it: how the benchmarks measure client mode on one machine.
CLIENT_MODE = os.environ.get("JRAY_CLIENT_MODE", "") in ("1", "true", "yes", "on")
# runtime_env: a working_dir/py_modules package over this size is refused
# before upload; the head keeps at most this much of them (least recently
# used deleted first); nodes delete cached packages and pip envs that no env
# has used for RUNTIME_ENV_CACHE_TTL_SECONDS, and sooner past
# RUNTIME_ENV_CACHE_BYTES; idle workers of an env other than the default
# are ended after RUNTIME_ENV_IDLE_WORKER_SECONDS.
RUNTIME_ENV_MAX_PACKAGE_BYTES = int(_env("RUNTIME_ENV_MAX_PACKAGE_BYTES", 100 * 1024 * 1024))
RUNTIME_ENV_HEAD_CACHE_BYTES = int(_env("RUNTIME_ENV_HEAD_CACHE_BYTES", 10 * 1024**3))
RUNTIME_ENV_CACHE_TTL_SECONDS = _env("RUNTIME_ENV_CACHE_TTL_SECONDS", 600.0)
RUNTIME_ENV_CACHE_BYTES = int(_env("RUNTIME_ENV_CACHE_BYTES", 10 * 1024**3))
RUNTIME_ENV_IDLE_WORKER_SECONDS = _env("RUNTIME_ENV_IDLE_WORKER_SECONDS", 10.0)
RUNTIME_ENV_SETUP_TIMEOUT_SECONDS = _env("RUNTIME_ENV_SETUP_TIMEOUT_SECONDS", 600.0)
# What installs a pip env's packages: "auto" (uv where it is installed, pip
# otherwise), "uv" or "pip" (JRAY_RUNTIME_ENV_PIP_INSTALLER).
RUNTIME_ENV_PIP_INSTALLER = os.environ.get("JRAY_RUNTIME_ENV_PIP_INSTALLER", "auto")
# An owner keeps the specs of finished tasks whose outputs it may have to
# rebuild (lineage reconstruction) up to this many bytes, oldest evicted
# first (Ray's RAY_max_lineage_bytes, 1 GB).
LINEAGE_MAX_BYTES = int(_env("LINEAGE_MAX_BYTES", 1024**3))
# ray.util.metrics: processes report to their raylet this often; each raylet
# serves its node's metrics to Prometheus on this port (0: a free one, shown
# as jray.nodes()[i]["MetricsExportPort"]).
METRICS_REPORT_SECONDS = _env("METRICS_REPORT_SECONDS", 1.0)
METRICS_EXPORT_PORT = _env("METRICS_EXPORT_PORT", 0)
