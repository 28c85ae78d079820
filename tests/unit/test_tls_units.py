"""jray._private.tls: which settings turn TLS on, the certificates ``jray
start --head --tls`` generates (modes, names, a real mutual handshake), and
the errors for missing files."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading

import pytest

from jray._private import tls

ENV = ("JRAY_USE_TLS", "JRAY_TLS_DIR", "JRAY_TLS_CA_CERT", "JRAY_TLS_SERVER_CERT", "JRAY_TLS_SERVER_KEY",
       "JRAY_TLS_SERVER_NAME")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for k in ENV:  # set then deleted: whatever adopt() writes is undone at teardown
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return tls.generate(str(tmp_path_factory.mktemp("tls") / "cluster"))


def test_off_unless_asked():
    assert tls.current() is None and not tls.enabled()


def test_a_tls_dir_turns_it_on(monkeypatch, certs):
    monkeypatch.setenv("JRAY_TLS_DIR", certs)
    cfg = tls.current()
    assert cfg is not None
    assert (cfg.ca_cert, cfg.cert, cfg.key) == tuple(os.path.join(certs, f) for f in ("ca.crt", "node.crt",
                                                                                       "node.key"))
    assert cfg.server_name == "jray-cluster"
    monkeypatch.setenv("JRAY_USE_TLS", "0")  # an explicit "off" wins
    assert tls.current() is None


def test_rays_variables_win_over_the_dir(monkeypatch, certs, tmp_path):
    monkeypatch.setenv("JRAY_TLS_DIR", certs)
    monkeypatch.setenv("JRAY_TLS_SERVER_CERT", str(tmp_path / "mine.crt"))
    monkeypatch.setenv("JRAY_TLS_SERVER_NAME", "")
    cfg = tls.current()
    assert cfg is not None and cfg.cert == str(tmp_path / "mine.crt") and cfg.key.startswith(certs)
    assert tls.server_hostname(cfg, "10.0.0.7") == "10.0.0.7"  # empty name: check the dialled host
    with pytest.raises(tls.TLSConfigError, match=r"JRAY_TLS_SERVER_CERT \(.*mine.crt\) cannot be read"):
        cfg.read()


def test_use_tls_without_files_names_what_is_missing(monkeypatch):
    monkeypatch.setenv("JRAY_USE_TLS", "1")
    monkeypatch.setenv("JRAY_TLS_CA_CERT", "/x/ca.crt")
    with pytest.raises(tls.TLSConfigError, match="JRAY_TLS_SERVER_CERT, JRAY_TLS_SERVER_KEY is not"):
        tls.current()


def test_generated_files_are_private_and_kept(certs):
    assert stat.S_IMODE(os.stat(certs).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(certs, "node.key")).st_mode) == 0o600
    assert not os.path.exists(os.path.join(certs, "ca.key"))  # the CA's key is not kept
    before = open(os.path.join(certs, "node.crt")).read()
    tls.generate(certs)  # again: the copies other machines hold stay valid
    assert open(os.path.join(certs, "node.crt")).read() == before


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, name: str) -> str:
    """A real TLS handshake over a socket pair; '' or the error's text."""
    a, b = socket.socketpair()
    out: dict[str, str] = {}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                s.sendall(b"ok")
        except (ssl.SSLError, OSError) as e:
            out["server"] = str(e)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=name) as c:
            c.settimeout(10)
            data = c.recv(2)
            return "" if data == b"ok" else f"server said {data!r} ({out.get('server', '')})"
    except (ssl.SSLError, OSError) as e:
        return str(e)
    finally:
        t.join(10)
        a.close()
        b.close()


def _cfg(d: str) -> tls.TLSConfig:
    return tls.TLSConfig(os.path.join(d, "ca.crt"), os.path.join(d, "node.crt"), os.path.join(d, "node.key"),
                         "jray-cluster")


def test_mutual_handshake_with_the_cluster_name(certs, tmp_path):
    cfg = _cfg(certs)
    assert _handshake(tls.server_context(cfg), tls.client_context(cfg), "jray-cluster") == ""
    # the name the certificate does not carry is refused
    assert "match" in _handshake(tls.server_context(cfg), tls.client_context(cfg), "other-name").lower()
    # a certificate of another CA: neither side accepts the other
    other = _cfg(tls.generate(str(tmp_path / "other")))
    assert "certificate" in _handshake(tls.server_context(cfg), tls.client_context(other), "jray-cluster")
    assert _handshake(tls.server_context(other), tls.client_context(cfg), "jray-cluster") != ""


def test_a_client_without_a_certificate_is_refused(certs):
    cfg = _cfg(certs)
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.load_verify_locations(cfg.ca_cert)  # trusts the server, shows no certificate of its own
    assert _handshake(tls.server_context(cfg), bare, "jray-cluster") != ""


def test_a_recorded_cluster_is_adopted(monkeypatch, certs):
    monkeypatch.setenv("JRAY_TLS_DIR", certs)
    rec = tls.record()
    monkeypatch.delenv("JRAY_TLS_DIR")
    assert tls.current() is None
    tls.adopt({"tls": rec})
    cfg = tls.current()
    assert cfg is not None and cfg.cert == os.path.join(certs, "node.crt")
    tls.adopt({})  # a cluster without TLS changes nothing
    assert tls.current() is not None
