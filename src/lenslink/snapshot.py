"""The ranking snapshot on disk, next to the database: a restart of the daemon or a CLI
call on an unchanged vault loads it in a fraction of a second instead of building it.

The file starts with a key computed from the store (every note's content hash and
parser signature, the lens signatures, stored rankers, vector count, embedder and
lenslink version); a file whose key differs from the store's is ignored and replaced.
It is written atomically and only by lenslink, in the user's data folder; a damaged or
unreadable file is ignored (the snapshot is then built from the store).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from pathlib import Path

from . import __version__
from .lenses import VaultConfig
from .store import Store

log = logging.getLogger("lenslink.snapshot")
FORMAT = 1
MAGIC = b"lenslink-snapshot\n"


def path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".snapshot")


def state_key(store: Store, config: VaultConfig, embedder_id: str) -> str:
    """A hash of everything the ranking snapshot is built from."""
    h = hashlib.sha256(json.dumps([
        FORMAT, __version__, embedder_id, store.get_meta("boilerplate") or "",
        [(lens.name, lens.signature) for lens in config.lenses],
    ]).encode())
    for row in store.db.execute("SELECT path, content_hash, signature FROM notes ORDER BY path"):
        h.update("\0".join(row).encode("utf-8", "surrogatepass") + b"\n")
    for row in store.db.execute("SELECT lens, embedder, signature, trained_at FROM models ORDER BY lens"):
        h.update(repr(tuple(row)).encode())
    h.update(repr(store.db.execute("SELECT count(*) FROM vectors WHERE embedder=?",
                                   [embedder_id]).fetchone()).encode())
    return h.hexdigest()


def save(index, key: str, path: Path) -> None:
    """Write the snapshot (without its per-query caches) atomically; errors are logged."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            out.write(MAGIC + key.encode("ascii") + b"\n")
            pickle.dump(index.without_caches(), out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not save the ranking snapshot to %s: %s", path, exc)
        try:
            tmp.unlink()
        except OSError:
            pass


def load(path: Path, key: str, config: VaultConfig):
    """The snapshot saved under `key`, with the current config's lenses; None if there
    is none, it is for another state, or it cannot be read."""
    try:
        with open(path, "rb") as f:
            if f.readline() != MAGIC or f.readline().rstrip(b"\n") != key.encode("ascii"):
                return None
            index = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # damaged: build it again
        log.warning("ignoring the unreadable ranking snapshot %s: %s", path, exc)
        return None
    return index.with_config(config)
