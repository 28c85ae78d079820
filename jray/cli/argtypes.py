"""Argument types of the ``jray`` options: argparse turns the
``ArgumentTypeError`` each raises into exit 2 with a message naming the flag."""

from __future__ import annotations

import argparse
import ipaddress
import json


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {v}")
    return v


def positive_int(text: str) -> int:
    v = non_negative_int(text)
    if v == 0:
        raise argparse.ArgumentTypeError("must be positive, got 0")
    return v


def port(text: str) -> int:
    v = non_negative_int(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number (0-65535; 0 picks a free one), got {v}"
        )
    return v


def resources(text: str) -> dict[str, float]:
    """``--resources '{"gpu_box": 1}'``: custom resources (CPU/GPU have flags of their own)."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"gpu_box\": 1}}', got {text!r}"
        )
    out: dict[str, float] = {}
    for k, v in value.items():
        if k in ("CPU", "GPU"):
            raise argparse.ArgumentTypeError(
                f"use --num-{k.lower()}s instead of {k!r} in --resources"
            )
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise argparse.ArgumentTypeError(
                f"the quantity of {k!r} must be a non-negative number, got {v!r}"
            )
        out[k] = float(v)
    return out


def labels(text: str) -> dict[str, str]:
    """``--labels '{"zone": "a"}'``: the node's labels (string to string)."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object of strings such as '{{\"zone\": \"a\"}}', got {text!r}"
        )
    return dict(value)


def ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def host_port(text: str) -> str:
    host, sep, num = text.rpartition(":")
    if not sep or not host or not num.isdigit() or not 0 < int(num) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text
