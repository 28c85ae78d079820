"""``python -m jray.cli``: the ``jray`` command."""

from __future__ import annotations

import sys

from jray.cli import main

sys.exit(main())
