"""JupyterLab in headless Chromium, its server on a machine with no jray node:
the sidebar's connect form attaches the server's kernels to a cluster on
another (virtual) host. A wrong token shows jray's error in the sidebar and
changes nothing; the right one shows the remote cluster's node; a notebook's
bare ``jray.init()`` runs a task there (as a client); Disconnect brings the
form back.
"""

from __future__ import annotations

import pytest

from jray._private import virtual_hosts as vh
from tests.serverext.test_browser import _api, _notebook, lab_session

CELLS = [
    "import socket\nimport jray\njray.init(ignore_reinit_error=True)\n"
    "from jray._private.worker import global_state\nprint('client', global_state.worker.client)",
    "@jray.remote\ndef where():\n    return socket.gethostname()\n\nprint('ran on', jray.get(where.remote()))",
]


@pytest.mark.timeout(420)
def test_connect_form_attaches_to_a_remote_cluster(tmp_path):
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with vh.VirtualHosts() as v:
        a = v.add_host("a")
        address, token = vh.start_head(a, num_cpus=2, object_store_memory=64 * 1024 * 1024)
        with lab_session(tmp_path, jray={"mode": "none"}, state="stopped", viewport=(1400, 900),
                         failure_shot="jupyterlab_remote_failure.png") as lab:
            server, page = lab.server, lab.page
            _api(server.url + "api/contents/remote.ipynb", server.token, "PUT",
                 {"type": "notebook", "format": "json", "content": _notebook(CELLS)})
            lab.open_lab()
            sidebar = lab.sidebar(state="stopped")
            form = sidebar.locator(".jray-connect")
            form.wait_for()

            # A wrong token: jray's message in the sidebar, still stopped.
            form.locator(".jray-connect-address").fill(address)
            form.locator(".jray-connect-token").fill("not-the-token")
            form.locator(".jray-connect-button").click()
            sidebar.locator(".jray-error", has_text="refused this token").wait_for()
            page.wait_for_timeout(2500)  # a poll later the error is still there
            assert "refused this token" in sidebar.locator(".jray-error").inner_text()
            assert sidebar.locator(".jray-state-stopped").count() == 1

            # The right one: the remote cluster and its node.
            form.locator(".jray-connect-token").fill(token)
            form.locator(".jray-connect-button").click()
            sidebar.locator(".jray-state-running").wait_for()
            line = sidebar.locator(".jray-state-line").inner_text()
            assert address in line and "clients" in line
            sidebar.locator(".jray-node", has_text=a.ip).wait_for()
            assert sidebar.locator(".jray-error").inner_text() == ""
            assert not form.is_visible() and sidebar.locator(".jray-disconnect").is_visible()
            assert form.locator(".jray-connect-token").input_value() == ""  # not kept in the page

            # A notebook started now runs its tasks there.
            page.evaluate("window.jupyterapp.commands.execute('docmanager:open', {path: 'remote.ipynb'})")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            page.wait_for_function(
                "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext;"
                " return k && k.session && k.session.kernel && k.session.kernel.status === 'idle'; }")
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.locator(".jp-OutputArea-output", has_text="ran on a").wait_for()
            assert page.locator(".jp-OutputArea-output", has_text="client True").count() == 1
            lab.screenshot("jupyterlab_remote_cluster.png")

            # Disconnect: the form is back, the remote cluster runs on.
            if not sidebar.is_visible():
                page.locator('.jp-SideBar [data-id="jray-sidebar"]').click()
            sidebar.locator(".jray-disconnect").click()
            sidebar.locator(".jray-state-stopped").wait_for()
            form.wait_for()
            assert a.processes()
    assert v.leftovers() == []
