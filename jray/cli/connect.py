"""Which cluster a ``jray`` command talks to, and one GCS call to it.

The cluster is ``--address``, else ``JRAY_ADDRESS``, else the address file
that ``jray start --head`` wrote; its token is ``JRAY_TOKEN`` or the address
file's. A cluster that is down or refuses the token becomes a one-line
``CliError``, not a gRPC traceback.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from jray._private import node as _node
from jray._private import tls
from jray.cli import argtypes
from jray.cli.command import CliError


def configure_address(p: argparse.ArgumentParser) -> None:
    """``--address HOST:PORT``, the option of every command that reads a cluster."""
    p.add_argument(
        "--address",
        type=argtypes.host_port,
        metavar="HOST:PORT",
        help="GCS address (default: JRAY_ADDRESS, else the address file)",
    )


def target(address: str | None) -> tuple[str, str]:
    """(gcs address, token) of the cluster a command talks to: ``--address``,
    else ``JRAY_ADDRESS``, else the address file of ``jray start --head``."""
    info = _node.read_address_file()
    address = address or os.environ.get("JRAY_ADDRESS")
    if not address or address == "auto":
        if info is None:
            raise CliError(
                "No jray cluster is running (no address file at "
                f"{_node.address_file()}); start one with 'jray start --head'."
            )
        tls.adopt(info)
        return info["gcs_address"], info["token"]
    address = address.removeprefix("jray://")
    token = os.environ.get("JRAY_TOKEN")
    if info is not None and info.get("gcs_address") == address:
        tls.adopt(info)
        if token is None:
            token = info["token"]
    if token is None:
        raise CliError(
            f"No token for the cluster at {address}: set JRAY_TOKEN (printed by "
            "'jray start --head' on the head machine)."
        )
    return address, token


def rpc(address: str, call: Callable[[], Any]) -> Any:
    """One GCS call (a ``gcs_client.*_at`` function); a clear CliError when
    the cluster is down or refuses the token."""
    import grpc

    try:
        return call()
    except grpc.RpcError as e:
        code = e.code() if hasattr(e, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise CliError(
                f"The cluster at {address} refused the token (JRAY_TOKEN is not its token)."
            ) from None
        from jray._private import gcs_client

        mismatch = gcs_client.tls_mismatch(address, e.details() if hasattr(e, "details") else str(e))
        if mismatch:
            raise CliError(mismatch) from None
        raise CliError(
            f"No jray cluster is running at {address} (it does not answer: "
            f"{code.name if code else e})."
        ) from None


def check_gcs(address: str, token: str) -> None:
    """Raise ``CliError`` unless the GCS at ``address`` answers and takes ``token``."""
    from jray._private import gcs_client

    rpc(address, lambda: gcs_client.check_alive_at(address, token, timeout=5.0))
