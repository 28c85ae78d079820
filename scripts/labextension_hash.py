"""The hash of the JupyterLab extension's sources (``extension/``), recorded in
the committed build (``jray/labextension/build_hash.txt``) by
``scripts/build_labextension.sh``; a test compares the two so the shipped
build cannot fall behind its sources.

    python scripts/labextension_hash.py          # print the hash of the sources
    python scripts/labextension_hash.py --check  # exit 1 if the build is stale
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "src", "style")
RECORD = ROOT / "jray" / "labextension" / "build_hash.txt"


def source_hash(ext_dir: Path = ROOT / "extension") -> str:
    h = hashlib.sha256()
    files: list[Path] = []
    for name in SOURCES:
        p = ext_dir / name
        files.extend(sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p])
    for f in files:
        h.update(f.relative_to(ext_dir).as_posix().encode() + b"\0")
        h.update(f.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return h.hexdigest()


def recorded_hash() -> str:
    return RECORD.read_text().strip() if RECORD.exists() else ""


if __name__ == "__main__":
    if "--check" in sys.argv:
        ok = recorded_hash() == source_hash()
        print("the committed labextension build matches extension/" if ok else
              "jray/labextension/ is stale: run scripts/build_labextension.sh")
        sys.exit(0 if ok else 1)
    if "--write" in sys.argv:
        RECORD.write_text(source_hash() + "\n")
    print(source_hash())
