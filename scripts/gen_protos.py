"""Regenerate the committed gRPC stubs from ``jray/_private/protocol/*.proto``.

Run from anywhere: ``python scripts/gen_protos.py``. The stubs are generated
with ``-I <repo root>`` so their imports are absolute
(``from jray._private.protocol import common_pb2``), which avoids the
relative-import pitfall discussed in protobuf issue 1491 / grpc issue 29390.
``--check`` regenerates into a temporary folder and exits 1 when the
committed files differ (the test suite runs that).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "jray" / "_private" / "protocol"


def generate(out_root: Path) -> list[Path]:
    from grpc_tools import protoc

    protos = sorted(PROTO_DIR.glob("*.proto"))
    rel = [str(p.relative_to(ROOT)) for p in protos]
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *rel,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    out = out_root / "jray" / "_private" / "protocol"
    return sorted(p for p in out.iterdir() if p.name.endswith((".py", ".pyi")) and "_pb2" in p.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when committed stubs are stale")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
        if ns.check:
            stale = [
                f.name
                for f in files
                if not (PROTO_DIR / f.name).exists() or not filecmp.cmp(f, PROTO_DIR / f.name, shallow=False)
            ]
            committed = {p.name for p in PROTO_DIR.iterdir() if "_pb2" in p.name}
            extra = sorted(committed - {f.name for f in files})
            if stale or extra:
                print("stale generated stubs:", ", ".join(stale + extra), file=sys.stderr)
                return 1
            return 0
        for f in files:
            shutil.copyfile(f, PROTO_DIR / f.name)
            print("wrote", (PROTO_DIR / f.name).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
