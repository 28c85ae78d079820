"""``resolve``: which cluster mode 'attach' uses, and with which token."""

from __future__ import annotations

import psutil
import pytest

from jray._private import node as _node
from jray.jupyter.serverext.cluster import ClusterError, HeadOptions, ServerCluster, resolve


@pytest.fixture
def clean_env(monkeypatch):
    for k in ("JRAY_ADDRESS", "JRAY_TOKEN", "RAY_ADDRESS"):
        monkeypatch.delenv(k, raising=False)


def test_resolve_auto_reads_the_address_file(head, clean_env):
    _node.write_address_file(head)
    try:
        assert resolve("", "") == (head.gcs_address, head.token)
        assert resolve("auto", "") == (head.gcs_address, head.token)
        assert resolve(head.gcs_address, "") == (head.gcs_address, head.token)  # same cluster: its token
    finally:
        _node.remove_address_file_if(head)
    with pytest.raises(ClusterError, match="no running jray cluster"):
        resolve("auto", "")


def test_resolve_needs_a_token_for_another_cluster(clean_env, monkeypatch):
    with pytest.raises(ClusterError, match="no token"):
        resolve("10.0.0.5:6380", "")
    assert resolve("jray://10.0.0.5:6380", "t") == ("10.0.0.5:6380", "t")
    monkeypatch.setenv("JRAY_ADDRESS", "10.0.0.6:6380")
    monkeypatch.setenv("JRAY_TOKEN", "env-token")
    assert resolve("", "") == ("10.0.0.6:6380", "env-token")


def test_attach_sets_and_restores_the_kernel_environment(head, clean_env, monkeypatch):
    import os

    monkeypatch.setenv("JRAY_DASHBOARD_URL", "before")
    c = ServerCluster(HeadOptions(), dashboard_url="/base/jray/views/")
    c.attach(head.gcs_address, head.token)
    assert (os.environ["JRAY_ADDRESS"], os.environ["JRAY_TOKEN"]) == (head.gcs_address, head.token)
    assert os.environ["JRAY_DASHBOARD_URL"] == "/base/jray/views/"
    with pytest.raises(ClusterError, match="already in use"):
        c.start()
    c.stop()
    assert "JRAY_ADDRESS" not in os.environ and os.environ["JRAY_DASHBOARD_URL"] == "before"
    gcs = psutil.Process(head.gcs_pid)
    assert gcs.is_running() and gcs.status() != psutil.STATUS_ZOMBIE  # attached: left running
