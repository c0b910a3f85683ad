"""The ranking snapshot on disk, next to the database: a restart of the daemon or a CLI
call on an unchanged vault loads it in a fraction of a second instead of building it.

The file starts with a key computed from the store (when each note was last stored and
its parser signature, the lens signatures, vector count, embedder and lenslink version); a
file whose key differs from the store's is not loaded as it is. When only notes differ
(the same `base_key`), it was built with every vector present, and few notes changed
since, it is loaded and brought up to date from those notes (`load_stale` and
`changed_since`; the daemon restarted after edits), else built again. The rankers are not in
it: they are read from the store on every load (`VaultIndex.with_models`), so training
does not make the snapshot stale.
It is written atomically and only by lenslink, in the user's data folder; a damaged or
unreadable file is ignored (the snapshot is then built from the store).

Layout: the key line, a JSON line with the sizes and the facts `load_stale` checks, the
pickled index (protocol 5), each aligned to 64 bytes, the raw bytes of its numpy arrays,
pickled out of band, and when each of its notes was stored (float64). A load
maps the file copy-on-write and the arrays use the mapped bytes where they lie: loading
costs what the Python objects cost (the vectors are hundreds of MB at 100,000 notes),
the pages are read as queries touch them, and the few rows an update writes are copied.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import json
import logging
import mmap
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from . import __version__, lexical, rank
from . import index as index_mod
from .errors import StoreError
from .lenses import VaultConfig
from .rank import VaultIndex
from .store import Store

log = logging.getLogger("lenslink.snapshot")
FORMAT = 8
ALIGN = 64
MAGIC = b"lenslink-snapshot\n"


# `build_apart` is worth its process start from this many notes (at 100,000 notes a build
# in the daemon's own process left it 1.3 GB that the mapped file needs 200 MB for).
APART_MIN_NOTES = 20_000


def path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".snapshot")


def base_key(store: Store, config: VaultConfig, embedder_id: str) -> str:
    """A hash of what the snapshot is built from besides the notes and their vectors."""
    return hashlib.sha256(json.dumps([
        FORMAT, __version__, embedder_id, store.get_meta("boilerplate") or "",
        lexical.MAX_QUERY_TERMS, lexical.MAX_QUERY_POSTINGS,  # the calibrators were fitted on such scores
        rank.SKETCH_MIN_NOTES, rank.SKETCH_DIM,
        [(lens.name, lens.signature) for lens in config.lenses],
    ]).encode()).hexdigest()


def state_key(store: Store, config: VaultConfig, embedder_id: str) -> str:
    """A hash of everything the ranking snapshot is built from."""
    h = hashlib.sha256(base_key(store, config, embedder_id).encode())
    # indexed_at changes whenever a note is stored again, not when only bytes that lenslink
    # does not read changed (its own block written back: `touch_note` updates content_hash)
    rows = store.db.execute("SELECT path, indexed_at, signature FROM notes ORDER BY path").fetchall()
    h.update("".join(f"{path}\0{stored!r}\0{signature}\n" for path, stored, signature in rows)
             .encode("utf-8", "surrogatepass"))
    # Vectors added since (texts that were waiting for theirs): the newest row id grows
    # with every insert. (A count took 0.3 s at 100,000 notes. Vectors are only deleted
    # when no chunk uses them any more, i.e. after a note was stored again, which the
    # notes' times above already show.)
    h.update(repr(store.db.execute("SELECT max(rowid) FROM vectors").fetchone()).encode())
    return h.hexdigest()


@contextlib.contextmanager
def _no_gc():
    """The cyclic collector off while millions of objects are made at once: it would
    run hundreds of times over a growing heap (4.5 s instead of 0.9 s for 100,000 notes)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def facts(store: Store, config: VaultConfig, embedder_id: str, index, stored: dict[str, float]) -> dict:
    """What `load_stale` needs to know of the store's state when `index` was loaded from
    it: its base key, the active lenses, whether every text had its vector, and when each
    of the index's notes was stored (aligned with `index.notes`; `stored`: the store's
    `stored_times()` read *before* the load, so a note stored meanwhile shows as changed)."""
    active, complete = index_mod.recorded_state(store, config)
    return {"base": base_key(store, config, embedder_id), "active": active, "complete": complete,
            "stored_at": np.array([stored.get(n.path, -1.0) for n in index.notes], dtype=np.float64)}


def save(index, key: str, path: Path, known: dict | None = None) -> None:
    """Write the snapshot (without its per-query caches) atomically; errors are logged.
    `known`: its `facts`, without which it is never brought up to date."""
    tmp = None
    try:
        # a unique name: the daemon's worker and trainer threads may save at once
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(index.without_caches(), protocol=5, buffer_callback=buffers.append)
        views = [b.raw() for b in buffers]
        sizes = {"pickle": len(data), "buffers": [v.nbytes for v in views]}
        if known is not None:
            stored_at = np.ascontiguousarray(known["stored_at"], dtype=np.float64)
            sizes["facts"] = {k: v for k, v in known.items() if k != "stored_at"}
            sizes["stored_at"] = stored_at.nbytes
            views.append(memoryview(stored_at).cast("B"))
        head = MAGIC + key.encode("ascii") + b"\n" + json.dumps(sizes).encode() + b"\n"
        with open(tmp, "wb") as out:
            out.write(head)
            for chunk in (data, *views):
                out.write(b"\0" * (_aligned(out.tell()) - out.tell()))
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not save the ranking snapshot to %s: %s", path, exc)
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def discard(path: Path) -> None:
    """Remove the snapshot (after `index --rebuild`: the next load builds one instead of
    bringing the one of before up to date); errors are logged."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove the ranking snapshot %s: %s", path, exc)


def load(path: Path, key: str, config: VaultConfig):
    """The snapshot saved under `key`, with the current config's lenses; None if there
    is none, it is for another state, or it cannot be read."""
    found = _read(path, key)
    return None if found is None else found[0].with_config(config)


def load_stale(path: Path, base: str, config: VaultConfig):
    """(index, facts) of a snapshot saved with `facts` under this base key whatever its
    state key, else None; `facts["stored_at"]` is a numpy array again."""
    found = _read(path, None)
    if found is None or found[1] is None or found[1].get("base") != base:
        return None
    # the config only now: a snapshot of other lenses has another base key (and `with_config`
    # would fail on a lens the config no longer has)
    return found[0].with_config(config), found[1]


def changed_since(index, stored_at: np.ndarray, now: dict[str, float]) -> list[str]:
    """Paths of the notes added, removed or stored again since `index` was loaded from
    the store (`stored_at`: when each of its notes had been stored then; `now`: the
    store's `stored_times()`)."""
    then = {n.path: t for n, t in zip(index.notes, stored_at.tolist()) if n.path in index.row}
    return sorted({p for p, t in now.items() if then.get(p) != t} | (then.keys() - now.keys()))


def _read(path: Path, key: str | None):
    """(index, facts or None) from the file if its key is `key` (any key: None), the
    index with the config it was saved with."""
    try:
        with open(path, "rb") as f:
            if f.readline() != MAGIC:
                return None
            saved_key = f.readline().rstrip(b"\n")
            if key is not None and saved_key != key.encode("ascii"):
                return None
            sizes = json.loads(f.readline())
            pos = _aligned(f.tell())
            whole = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            mapped = memoryview(whole)
        data = mapped[pos:pos + sizes["pickle"]]
        pos = _aligned(pos + sizes["pickle"])
        buffers = []
        for n in sizes["buffers"]:
            if pos + n > len(mapped):
                raise ValueError("the file is shorter than its header says")
            buffers.append(mapped[pos:pos + n])
            pos = _aligned(pos + n)
        known = sizes.get("facts")
        if known is not None:
            n = sizes["stored_at"]
            if pos + n > len(mapped):
                raise ValueError("the file is shorter than its header says")
            known = {**known, "stored_at": np.frombuffer(mapped[pos:pos + n], dtype=np.float64).copy()}
        with _no_gc():
            index = pickle.loads(data, buffers=buffers)
    except FileNotFoundError:
        return None
    except Exception as exc:  # damaged: build it again
        log.warning("ignoring the unreadable ranking snapshot %s: %s", path, exc)
        return None
    index.mapped = whole
    return index, known


def release_pages(index) -> int:
    """Unmap the snapshot file's pages that this process only read (they stay in the
    page cache; a later query maps what it reads again, without reading the disk) and
    return how many bytes that was. Pages an update wrote (copied on write) are kept.

    Why: the kernel maps file pages in large folios, so the ~1,000 scattered rows each
    query reads left most of the file resident in the daemon (at 100,000 notes: 280 MB
    after 200 queries). Linux only (elsewhere nothing happens). The caller must keep
    updates from writing meanwhile: a page written between the check and the unmapping
    would lose the write."""
    whole = getattr(index, "mapped", None)
    dontneed = getattr(mmap, "MADV_DONTNEED", None)
    if whole is None or whole.closed or dontneed is None or not len(whole):
        return 0
    page = mmap.PAGESIZE
    anchor = ctypes.c_char.from_buffer(whole)
    start = ctypes.addressof(anchor)
    del anchor  # (an export left open would keep the mapping from closing)
    pages = (len(whole) + page - 1) // page
    try:
        with open("/proc/self/pagemap", "rb") as f:
            f.seek(start // page * 8)
            entries = np.frombuffer(f.read(pages * 8), dtype=np.uint64)
    except OSError:
        return 0
    if len(entries) != pages:
        return 0
    present = (entries >> np.uint64(63)) & np.uint64(1) == 1
    swapped = (entries >> np.uint64(62)) & np.uint64(1) == 1  # also a page being migrated
    shared = (entries >> np.uint64(61)) & np.uint64(1) == 1  # a file page, not a private copy
    # kept: private copies (what an update wrote), in memory or swapped out
    written = (present & ~shared) | swapped
    # runs of pages between written ones
    edges = np.flatnonzero(np.diff(np.concatenate([[True], written, [True]]).astype(np.int8)))
    released = 0
    for first, end in zip(edges[::2], edges[1::2]):
        mapped_here = int(np.count_nonzero(present[first:end]))
        if mapped_here:
            whole.madvise(dontneed, int(first) * page, (int(end) - int(first)) * page)
            released += mapped_here * page
    return released


def build_apart(db_path: Path, config: VaultConfig, embedder_id: str, key: str,
                stop: threading.Event | None = None) -> bool:
    """Build and save the snapshot in a child process, so that the memory a build needs
    is returned with it (the caller then maps the file); whether it ended well. A child
    killed by a signal (Ctrl-C reaches it too), or stopped because `stop` was set (a
    daemon asked to stop does not wait minutes for it), raises StoreError: no build here.

    The child is a fresh interpreter that imports only lenslink (not the caller's main
    module, which multiprocessing's spawn would run again), started in the folder this
    lenslink is imported from (not the caller's, whose files could shadow modules)."""
    if stop is not None and stop.is_set():
        raise StoreError("not building the ranking snapshot: stopping")
    job = pickle.dumps((str(db_path), config, embedder_id, key))
    where = str(Path(__file__).resolve().parent.parent)
    with tempfile.TemporaryFile() as err:
        try:
            child = subprocess.Popen([sys.executable, "-c", _CHILD], cwd=where, stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=err)
        except OSError as exc:
            log.warning("cannot start a child process to build the ranking snapshot (%s); "
                        "building it here", exc)
            return False
        try:
            child.stdin.write(job)
            child.stdin.close()
        except OSError:  # it died at once: its exit code says why
            pass
        while True:
            try:
                child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    child.terminate()
        err.seek(0)
        last = err.read().decode("utf-8", "replace").strip().splitlines()[-1:]
    if child.returncode < 0:
        raise StoreError(f"building the ranking snapshot was interrupted (signal {-child.returncode})")
    if child.returncode != 0:
        log.warning("building the ranking snapshot in a child process failed (exit code %s%s); "
                    "building it here", child.returncode, f": {last[0]}" if last else "")
    return child.returncode == 0


_CHILD = "from lenslink.snapshot import _child; _child()"


def _child() -> None:
    """`build_apart`'s child: the job arrives pickled on stdin."""
    _build(*pickle.loads(sys.stdin.buffer.read()))


def build(store: Store, config: VaultConfig, embedder_id: str, key: str, path: Path,
          reader=None) -> VaultIndex:
    """The ranking built from the store (`VaultIndex.load`), saved under `key` with its
    `facts`."""
    stored = store.stored_times()  # before the load: see `facts`
    index = VaultIndex.load(store, config, embedder_id, reader)
    save(index, key, path, facts(store, config, embedder_id, index, stored))
    return index


def _build(db_path: str, config: VaultConfig, embedder_id: str, key: str) -> None:
    store = Store.open(Path(db_path))
    try:
        build(store, config, embedder_id, key, path_for(Path(db_path))).reader.close()
    finally:
        store.close()
