"""The GCS's tables on disk: embedded SQLite in the session directory
(``<session>/gcs.db``), so a GCS that died is started again from them
(``--restore``) with its nodes, jobs, actors (named and detached ones too),
placement groups and KV (exported functions among them). Runtime_env
packages are files beside it already (``<session>/packages``).

Written through: each change is in the database before the GCS answers the
call that made it. WAL journal, ``synchronous=NORMAL``: a commit is one
``write`` to the log, no fsync, so it survives the GCS process dying (what
this is for), not the machine losing power (``JRAY_GCS_DB_SYNC=FULL`` for
that, at an fsync per change). Rows are serialized protobuf messages; task
events are not kept (as in Ray).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator

NODES, JOBS, PGS = "node", "job", "pg"
# An actor being created: the worker its creation task was pushed to and the
# spec pushed (``pack_creation``), so a restarted GCS asks that worker again.
CREATING = "creating"


def pack_creation(worker: bytes, spec: bytes) -> bytes:
    """One row of CREATING: the worker's Address and the pushed TaskSpec."""
    return len(worker).to_bytes(4, "little") + worker + spec


def unpack_creation(data: bytes) -> tuple[bytes, bytes]:
    n = int.from_bytes(data[:4], "little")
    return data[4:4 + n], data[4 + n:]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (kind TEXT NOT NULL, id BLOB NOT NULL, data BLOB NOT NULL, PRIMARY KEY (kind, id));
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS actors (id BLOB PRIMARY KEY, info BLOB NOT NULL, spec BLOB NOT NULL,
                                   worker_id BLOB NOT NULL, raylet TEXT NOT NULL, no_restart INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class GcsStore:
    """One SQLite database; every method commits before it returns."""

    def __init__(self, path: str, *, fresh: bool = False) -> None:
        self.path = path
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(path + suffix)
                except FileNotFoundError:
                    pass
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        sync = os.environ.get("JRAY_GCS_DB_SYNC", "NORMAL").upper()
        self.db.execute(f"PRAGMA synchronous={'FULL' if sync == 'FULL' else 'NORMAL'}")
        self.db.executescript(_SCHEMA)
        try:
            os.chmod(path, 0o600)  # the KV holds the users' pickled functions
        except OSError:
            pass

    def close(self) -> None:
        self.db.close()

    # -- protobuf rows by kind ------------------------------------------------------
    def put(self, kind: str, key: bytes, data: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO rows (kind, id, data) VALUES (?, ?, ?)", (kind, key, data))

    def delete(self, kind: str, key: bytes) -> None:
        self.db.execute("DELETE FROM rows WHERE kind = ? AND id = ?", (kind, key))

    def get(self, kind: str, key: bytes) -> bytes | None:
        row = self.db.execute("SELECT data FROM rows WHERE kind = ? AND id = ?", (kind, key)).fetchone()
        return None if row is None else bytes(row[0])

    def load(self, kind: str) -> list[bytes]:
        return [r[0] for r in self.db.execute("SELECT data FROM rows WHERE kind = ? ORDER BY rowid", (kind,))]

    # -- KV -------------------------------------------------------------------------
    def kv_put(self, ns: str, key: bytes, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)", (ns, key, value))

    def kv_delete(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self.db.executemany("DELETE FROM kv WHERE ns = ? AND key = ?", list(keys))

    def kv_items(self) -> Iterator[tuple[str, bytes, bytes]]:
        yield from self.db.execute("SELECT ns, key, value FROM kv ORDER BY rowid")

    # -- actors: the spec is written once, the rest on each change ---------------------
    def actor_insert(self, actor_id: bytes, info: bytes, spec: bytes, worker_id: bytes, raylet: str,
                     no_restart: bool) -> None:
        self.db.execute("INSERT OR REPLACE INTO actors (id, info, spec, worker_id, raylet, no_restart) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (actor_id, info, spec, worker_id, raylet, int(no_restart)))

    def actor_update(self, actor_id: bytes, info: bytes, worker_id: bytes, raylet: str, no_restart: bool) -> None:
        self.db.execute("UPDATE actors SET info = ?, worker_id = ?, raylet = ?, no_restart = ? WHERE id = ?",
                        (info, worker_id, raylet, int(no_restart), actor_id))

    def actors(self) -> list[tuple[bytes, bytes, bytes, str, bool]]:
        """(info, spec, worker_id, raylet address, no_restart) of every actor, oldest first."""
        return [(r[0], r[1], r[2], r[3], bool(r[4])) for r in
                self.db.execute("SELECT info, spec, worker_id, raylet, no_restart FROM actors ORDER BY rowid")]

    # -- scalars ----------------------------------------------------------------------
    def meta_put(self, key: str, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta_get(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])
