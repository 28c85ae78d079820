"""``jray.scripts``: the ``jray`` command line's former home, kept so that
``python -m jray.scripts`` and ``from jray.scripts import main`` still work.

The commands live in ``jray/cli/`` (their list: ``jray.cli.COMMANDS``).
"""

from __future__ import annotations

import sys

from jray.cli import COMMANDS, CliError, Command, build_parser, main
from jray.cli.cluster import DEFAULT_PORT, format_status

__all__ = ["COMMANDS", "DEFAULT_PORT", "CliError", "Command", "build_parser", "format_status", "main"]

if __name__ == "__main__":
    sys.exit(main())
