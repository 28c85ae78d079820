"""The notebook way on a real SLURM: ``create_or_update_cluster`` with a
dict config of ``provider: {type: slurm}`` starts a head here and its
autoscaler, which submits the ``min_workers`` node as a SLURM job;
``request_resources`` grows the cluster by another job; ``teardown_cluster``
(``jray down``) leaves no SLURM job, no process and no /dev/shm file on any
node, and stops the head."""

from __future__ import annotations

import glob
import os
import tempfile
import time

import psutil

import jray
from jray._private import gcs_client
from jray.autoscaler import sdk
from jray.autoscaler.node_provider import PROVIDER_NODE_ID_LABEL


def _config(slurm) -> dict:
    return {
        "cluster_name": "nb",
        "max_workers": 3,
        "idle_timeout_minutes": 5,
        "provider": {"type": "slurm", "head_ip": slurm.hosts.gateway, "head_port": 0,
                     "log_dir": os.path.join(slurm.base, "jobs", "nb")},
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}},
            "cpu2": {"resources": {"CPU": 2}, "min_workers": 1, "max_workers": 3, "node_config": {"time": "10:00"}},
        },
    }


def _head_leftovers(tmp: str) -> tuple[list[int], list[str]]:
    """Processes of the head started under JRAY_TMPDIR=tmp, and its store files."""
    procs = []
    for p in psutil.process_iter(["environ", "status"]):
        try:
            if p.pid != os.getpid() and (p.info["environ"] or {}).get("JRAY_TMPDIR") == tmp and \
                    p.info["status"] != psutil.STATUS_ZOMBIE:
                procs.append(p.pid)
        except psutil.Error:
            pass
    sessions = {os.path.basename(s) for s in glob.glob(os.path.join(tmp, "session_*"))}
    shm = [f for f in os.listdir("/dev/shm") if f.startswith("jray-") and f[len("jray-"):].rsplit("-", 1)[0] in sessions]
    return procs, shm


def test_up_request_resources_down(slurm):
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "JRAY_TMPDIR", "JRAY_ADDRESS", "JRAY_TOKEN")}
    tmp = tempfile.mkdtemp(prefix="slurm-up-", dir=os.environ.get("JRAY_TMPDIR"))
    os.environ.update(SLURM_CONF=slurm.conf, JRAY_TMPDIR=tmp)
    os.environ.pop("JRAY_ADDRESS", None)
    os.environ.pop("JRAY_TOKEN", None)
    cfg = _config(slurm)
    try:
        t0 = time.monotonic()
        info = sdk.create_or_update_cluster(cfg, wait_for_min_workers=True, timeout=60)
        up = time.monotonic() - t0

        def joined() -> list[str]:
            return sorted(n.labels[PROVIDER_NODE_ID_LABEL] for n in
                          gcs_client.alive_nodes_at(info.gcs_address, info.token)
                          if PROVIDER_NODE_ID_LABEL in n.labels)

        assert len(joined()) == 1 and sorted(slurm.jobs()) == joined()
        jray.init(address="auto")
        t1 = time.monotonic()
        sdk.request_resources(num_cpus=4)
        while len(joined()) < 2:
            assert time.monotonic() - t1 < 60, sdk.get_status()
            time.sleep(0.1)
        grown = time.monotonic() - t1
        assert sorted(slurm.jobs()) == joined()
        status = sdk.get_status()
        assert status is not None and status["provider"] == "slurm"
        print(f"\njray up (head + min_workers node on SLURM): {up:.1f} s; request_resources -> 2nd node "
              f"joined {grown:.1f} s")
    finally:
        jray.shutdown()
        t2 = time.monotonic()
        sdk.teardown_cluster(cfg)
        deadline = time.monotonic() + 30
        while slurm.jobs() or any(slurm.node_processes(n) or slurm.node_shm(n) for n in slurm.node_names) \
                or _head_leftovers(tmp) != ([], []):
            assert time.monotonic() < deadline, (slurm.jobs(), {n: slurm.node_processes(n) for n in slurm.node_names},
                                                 _head_leftovers(tmp))
            time.sleep(0.2)
        print(f"jray down -> no SLURM job and every node clean: {time.monotonic() - t2:.1f} s")
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
