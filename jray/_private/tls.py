"""TLS between the cluster's processes (Ray's ``RAY_USE_TLS``): mutual TLS on
every gRPC server and channel and on the direct transport.

Turned on by the environment, which every daemon and worker inherits:

- ``JRAY_TLS_DIR=DIR``: the directory ``jray start --head --tls`` writes
  (``ca.crt``, ``node.crt``, ``node.key``); copy it to each machine that
  joins or connects;
- or Ray's variables with jray's prefix: ``JRAY_USE_TLS=1`` with
  ``JRAY_TLS_CA_CERT``, ``JRAY_TLS_SERVER_CERT`` and ``JRAY_TLS_SERVER_KEY``
  (certificates of your own; the variables win over ``JRAY_TLS_DIR``'s files).

Mutual: every server asks for the peer's certificate and accepts only one the
cluster's CA signed, so a process without the cluster's key pair cannot even
open a connection (the token is still checked inside it). One certificate
serves a process both as server and as client, as in Ray.

Names. Nodes come and go with addresses no certificate can list in advance,
so peers check the server's certificate against one name,
``JRAY_TLS_SERVER_NAME`` (default ``jray-cluster``, which the generated
certificates carry) rather than the address they dialled; trust rests on
the CA. Set ``JRAY_TLS_SERVER_NAME=`` (empty) to check the dialled host
instead (certificates that list each node's address).

A cluster started with TLS records its files in the session's
``cluster.json``, so drivers and commands on the head machine that find the
cluster through the address file use TLS without being told (:func:`adopt`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from typing import Any

DEFAULT_SERVER_NAME = "jray-cluster"
CA_FILE, CERT_FILE, KEY_FILE = "ca.crt", "node.crt", "node.key"
_TRUE = ("1", "true", "yes", "on")


class TLSConfigError(ValueError):
    """TLS is asked for but its files are missing or unreadable."""


@dataclass(frozen=True)
class TLSConfig:
    ca_cert: str
    cert: str
    key: str
    server_name: str  # "" = check the dialled host

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(CA, certificate chain, private key) as PEM bytes."""
        out = []
        for what, path in (("JRAY_TLS_CA_CERT", self.ca_cert), ("JRAY_TLS_SERVER_CERT", self.cert),
                           ("JRAY_TLS_SERVER_KEY", self.key)):
            try:
                with open(path, "rb") as f:
                    out.append(f.read())
            except OSError as e:
                raise TLSConfigError(f"TLS is on but {what} ({path}) cannot be read: {e.strerror}") from None
        return out[0], out[1], out[2]


_cache: dict[tuple[Any, ...], Any] = {}


def _env_key() -> tuple[str, ...]:
    return tuple(os.environ.get(k, "") for k in (
        "JRAY_USE_TLS", "JRAY_TLS_DIR", "JRAY_TLS_CA_CERT", "JRAY_TLS_SERVER_CERT", "JRAY_TLS_SERVER_KEY"))


def current() -> TLSConfig | None:
    """This process's TLS settings, or None when TLS is off."""
    use, tls_dir, ca, cert, key = _env_key()
    if use and use.lower() not in _TRUE:
        return None  # JRAY_USE_TLS=0: off, whatever else is set
    if not tls_dir and not use:
        return None
    if tls_dir:
        ca = ca or os.path.join(tls_dir, CA_FILE)
        cert = cert or os.path.join(tls_dir, CERT_FILE)
        key = key or os.path.join(tls_dir, KEY_FILE)
    missing = [n for n, v in (("JRAY_TLS_CA_CERT", ca), ("JRAY_TLS_SERVER_CERT", cert),
                              ("JRAY_TLS_SERVER_KEY", key)) if not v]
    if missing:
        raise TLSConfigError(f"JRAY_USE_TLS is set but {', '.join(missing)} is not: set JRAY_TLS_DIR to the "
                             "directory `jray start --head --tls` wrote, or all three files.")
    name = os.environ.get("JRAY_TLS_SERVER_NAME", DEFAULT_SERVER_NAME)
    return TLSConfig(ca, cert, key, name)


def enabled() -> bool:
    return current() is not None


def env_of(tls_dir: str) -> dict[str, str]:
    """The environment that turns TLS on with the files of ``tls_dir``."""
    return {"JRAY_TLS_DIR": tls_dir}


def record() -> dict[str, str] | None:
    """What a session's ``cluster.json`` keeps of this process's TLS settings."""
    cfg = current()
    return None if cfg is None else {"ca_cert": cfg.ca_cert, "cert": cfg.cert, "key": cfg.key,
                                     "server_name": cfg.server_name}


def adopt(info: dict[str, Any] | None) -> None:
    """Use the TLS settings a cluster's ``cluster.json`` records (``info``:
    what ``node.read_address_file`` returns) when this process has none of
    its own; children started later inherit them."""
    rec = (info or {}).get("tls")
    if rec and current() is None and os.environ.get("JRAY_USE_TLS", "").lower() not in ("0", "false", "no", "off"):
        os.environ.update({"JRAY_USE_TLS": "1", "JRAY_TLS_CA_CERT": rec["ca_cert"],
                           "JRAY_TLS_SERVER_CERT": rec["cert"], "JRAY_TLS_SERVER_KEY": rec["key"],
                           "JRAY_TLS_SERVER_NAME": rec.get("server_name", DEFAULT_SERVER_NAME)})


# -- gRPC ---------------------------------------------------------------------


def _cached(kind: str, cfg: TLSConfig, make: Any) -> Any:
    """``make()``, once per settings and file versions (a replaced certificate
    is read again)."""
    stamps = []
    for path in (cfg.ca_cert, cfg.cert, cfg.key):
        try:
            stamps.append(os.stat(path).st_mtime_ns)
        except OSError:
            stamps.append(0)
    key = (kind, cfg, *stamps)
    v = _cache.get(key)
    if v is None:
        v = _cache[key] = make()
    return v


def server_credentials(cfg: TLSConfig) -> Any:
    import grpc

    def make() -> Any:
        ca, cert, key = cfg.read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

    return _cached("server", cfg, make)


def channel_credentials(cfg: TLSConfig) -> Any:
    import grpc

    def make() -> Any:
        ca, cert, key = cfg.read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    return _cached("channel", cfg, make)


def channel_options(cfg: TLSConfig) -> list[tuple[str, Any]]:
    return [("grpc.ssl_target_name_override", cfg.server_name)] if cfg.server_name else []


# -- the direct transport (asyncio / socket) ----------------------------------


def server_context(cfg: TLSConfig) -> ssl.SSLContext:
    def make() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cfg.cert, cfg.key)
        ctx.load_verify_locations(cfg.ca_cert)
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    return _cached("ssl-server", cfg, make)  # type: ignore[no-any-return]


def client_context(cfg: TLSConfig) -> ssl.SSLContext:
    def make() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cfg.cert, cfg.key)
        ctx.load_verify_locations(cfg.ca_cert)
        ctx.check_hostname = True
        return ctx

    return _cached("ssl-client", cfg, make)  # type: ignore[no-any-return]


def https_context(cfg: TLSConfig) -> ssl.SSLContext:
    """For an HTTPS client of the cluster (the jobs API): the cluster's CA,
    this process's certificate; the peer's name checked only when
    ``JRAY_TLS_SERVER_NAME`` is empty (http.client checks the dialled host,
    and the certificates name ``jray-cluster``: trust rests on the CA)."""
    def make() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cfg.cert, cfg.key)
        ctx.load_verify_locations(cfg.ca_cert)
        ctx.check_hostname = not cfg.server_name
        return ctx

    return _cached("https-client", cfg, make)  # type: ignore[no-any-return]


def server_hostname(cfg: TLSConfig, host: str) -> str:
    """The name a client checks the server's certificate against."""
    return cfg.server_name or host


# -- probing (clear errors) ---------------------------------------------------


def speaks_tls(address: str, timeout: float = 2.0) -> bool:
    """Whether the server at ``address`` answers a TLS handshake (checking
    nothing): tells "the cluster uses TLS, this process does not" apart from
    a dead address."""
    import socket

    host, port = address.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            with ctx.wrap_socket(s, server_hostname=DEFAULT_SERVER_NAME) as t:
                t.settimeout(timeout)
                return True
    except (OSError, ValueError):
        return False


# -- generating a cluster's certificates --------------------------------------


def generate(tls_dir: str, *, days: int = 3650, hosts: list[str] | None = None) -> str:
    """Write a new CA and one node certificate signed by it into ``tls_dir``
    (0700; the key 0600): ``ca.crt``, ``node.crt``, ``node.key``. The CA's
    own key is not kept: the cluster has this one key pair, and a leaked
    directory is replaced by generating a new one.
    The node certificate names ``jray-cluster`` (and ``hosts``, addresses or
    names). Returns ``tls_dir``. An existing directory with all three files
    is kept as it is (nodes and clients hold copies of it)."""
    if all(os.path.exists(os.path.join(tls_dir, f)) for f in (CA_FILE, CERT_FILE, KEY_FILE)):
        return tls_dir
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise TLSConfigError("Generating TLS certificates needs the 'cryptography' package: pip install "
                             "'jray[tls]' (or give your own with JRAY_TLS_CA_CERT, JRAY_TLS_SERVER_CERT, "
                             "JRAY_TLS_SERVER_KEY).") from None
    os.makedirs(tls_dir, mode=0o700, exist_ok=True)
    os.chmod(tls_dir, 0o700)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jray cluster CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(DEFAULT_SERVER_NAME), x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for h in hosts or ():
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEFAULT_SERVER_NAME)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))

    def write(name: str, data: bytes, mode: int) -> None:
        path = os.path.join(tls_dir, name)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    pem = serialization.Encoding.PEM
    nopass = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    write(CA_FILE, ca_cert.public_bytes(pem), 0o644)
    write(KEY_FILE, key.private_bytes(pem, pkcs8, nopass), 0o600)
    write(CERT_FILE, cert.public_bytes(pem), 0o644)
    return tls_dir
