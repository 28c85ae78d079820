"""What a ``jray`` subcommand is (``Command``) and how it fails (``CliError``).

Kept apart from ``jray/cli/__init__.py`` so the command modules can import
them while the package's ``COMMANDS`` list imports the command modules.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """``jray <name>``: ``configure`` adds its options to its subparser;
    ``run(ns)`` does the work and returns the exit code."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A failure to report in one line and exit 1 (not a usage error)."""


def err(msg: str) -> None:
    """Report on stderr as ``jray: msg``."""
    print(f"jray: {msg}", file=sys.stderr)
