"""The autoscaler's process (Ray's ``monitor.py``), started on the head by
``jray up``::

    JRAY_TOKEN=... python -m jray.autoscaler._private.monitor \\
        --config CONFIG.json --address GCS_HOST:PORT [--interval S]

Every ``--interval`` seconds (default 1, ``JRAY_AUTOSCALER_UPDATE_INTERVAL_S``)
it reads the cluster's state from the GCS (``GetClusterResourceState`` and
the standing ``request_resources`` request), runs one
:meth:`StandardAutoscaler.update` (in a thread: providers may block) and
publishes :meth:`StandardAutoscaler.status` as JSON under the GCS KV key
``autoscaler/status``, which ``jray status``, the SDK and the notebook
layer read. SIGTERM stops it (nodes stay: ``jray down`` terminates them);
so does a GCS silent for ``GCS_LOST_SECONDS`` (the cluster is gone).
``--head-pid PID:START_TIME`` names the head's lasting process (the GCS's
supervisor, or the GCS where none runs): when the GCS stops answering and
that process is gone too, the head was stopped (``jray stop`` rather than
``jray down``): the monitor terminates its nodes (no SLURM job or local
raylet outlives the cluster) and exits at once, not after the timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from typing import Any

from jray._private.autoscaler_state import STATUS_KEY, GcsLink
from jray.autoscaler._private.autoscaler import StandardAutoscaler
from jray.autoscaler._private.config import load
from jray.autoscaler._private.providers import make_provider

logger = logging.getLogger(__name__)
UPDATE_INTERVAL_S = float(os.environ.get("JRAY_AUTOSCALER_UPDATE_INTERVAL_S", 1.0))
GCS_LOST_SECONDS = 60.0


def head_gone(head: tuple[int, float] | None) -> bool:
    """Whether the head's process ``(pid, create_time)`` has exited."""
    if head is None:
        return False
    import psutil

    try:
        p = psutil.Process(head[0])
        return abs(p.create_time() - head[1]) > 0.5 or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


async def run(config_path: str, address: str, token: str, interval: float,
              head: tuple[int, float] | None = None) -> int:
    with open(config_path) as f:
        cfg = load(json.load(f))
    provider = make_provider(cfg.provider, cfg.cluster_name)
    scaler = StandardAutoscaler(cfg, provider, address)
    link = GcsLink(address, token)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    last_ok = time.monotonic()
    logger.info("autoscaler for cluster %s (provider %s) watching %s", cfg.cluster_name,
                cfg.provider.get("type"), address)
    try:
        while not stop.is_set():
            try:
                state = await link.resource_state()
            except Exception as e:  # noqa: BLE001 - the GCS may restart (its supervisor), or be gone
                if head_gone(head):
                    nodes = await asyncio.to_thread(provider.non_terminated_nodes, {})
                    logger.warning("the head stopped without `jray down`: terminating the cluster's %d node(s) "
                                   "and exiting", len(nodes))
                    await asyncio.to_thread(provider.terminate_nodes, nodes)
                    return 0
                if time.monotonic() - last_ok > GCS_LOST_SECONDS:
                    logger.error("the GCS at %s has not answered for %.0f s: the autoscaler exits", address,
                                 GCS_LOST_SECONDS)
                    return 1
                logger.warning("reading the cluster's state failed: %s", e)
            else:
                last_ok = time.monotonic()
                try:
                    await asyncio.to_thread(scaler.update, state)
                except Exception:  # noqa: BLE001 - the next round tries again
                    logger.exception("autoscaler update failed")
                await _publish(link, {**scaler.status(), "monitor_pid": os.getpid(), "running": True})
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
        await _publish(link, {**scaler.status(), "monitor_pid": os.getpid(), "running": False})
        return 0
    finally:
        provider.close()
        await link.close()


async def _publish(link: GcsLink, status: dict[str, Any]) -> None:
    try:
        await link.kv_put(STATUS_KEY, json.dumps(status, default=str).encode(), timeout=5)
    except Exception as e:  # noqa: BLE001 - best effort: the next round publishes again
        logger.debug("publishing the autoscaler status failed: %s", e)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jray.autoscaler._private.monitor")
    p.add_argument("--config", required=True, help="the validated cluster config (JSON)")
    p.add_argument("--address", required=True, help="the GCS address (token: JRAY_TOKEN)")
    p.add_argument("--interval", type=float, default=UPDATE_INTERVAL_S)
    p.add_argument("--head-pid", default="", help="PID:START_TIME of the head's lasting process")
    ns = p.parse_args(argv)
    head = None
    if ns.head_pid:
        pid, _, start = ns.head_pid.partition(":")
        head = (int(pid), float(start))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.get("JRAY_TOKEN", "")
    return asyncio.run(run(ns.config, ns.address, token, ns.interval, head))


if __name__ == "__main__":
    raise SystemExit(main())
