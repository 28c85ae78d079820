#!/usr/bin/env python3
"""Between machines (issue 19): object transfer, the receiving node's memory
and remote tasks on two network-namespace "hosts" on this box, jray against
Ray 2.60 and the raw link. Needs root; run with jray's interpreter:

    sudo .venv/bin/python bench/network.py                      # both runtimes, 100 MB and 1 GiB
    .venv/bin/python bench/network.py --runtimes jray --sizes 10MB --reps 2
    .venv/bin/python bench/network.py --out bench/out/network.json

The code is in ``jray/bench/network.py``.
"""

import sys

from jray.bench.network import main

if __name__ == "__main__":
    sys.exit(main())
