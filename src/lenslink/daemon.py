"""`lenslink serve`: keep the index and the related-notes blocks current while the vault
changes, and answer the local HTTP API from an in-memory snapshot.

One worker thread does everything that writes (sync, embed, write-back); HTTP threads
read the current ranking snapshot and a second, read-only use of the database.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import config as paths
from . import index as index_mod
from . import snapshot
from .errors import ConfigError, LenslinkError, NotFound, NotReady, UnsafePathError
from .lenses import CONFIG_NAME, load_config
from .notes import is_note_path
from .store import Store
from .vault import NOT_EMBEDDED, Vault
from .watcher import RESCAN, ChangeQueue, start_observer

log = logging.getLogger("lenslink.daemon")

WRITE_POLICIES = ("off", "manual", "auto")
RETRY_MIN, RETRY_MAX = 2.0, 300.0
TRAIN_MIN_NEW_LINKS = 20
RELEASE_AFTER = 2.0  # seconds without queries before the snapshot pages they mapped are unmapped
VERIFY_EVERY = 24 * 3600  # a full hash sweep (`index --verify`) when the last is older


class Cancelled(Exception):
    """The daemon is stopping: abandon the current batch (what was stored stays)."""


# -- token and lock -------------------------------------------------------------------
def token_path() -> Path:
    return paths.data_dir() / "token"


def load_token(create: bool = True) -> str:
    """The per-install API token, created with mode 0600 outside any vault. Created under
    a lock: daemons started at the same time (two vaults at login) all get the one token
    the file holds."""
    path = token_path()
    token = _read_token(path)
    if token:
        return token
    if not create:
        raise ConfigError(f"no token yet at {path}; run `lenslink token`")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name("token.lock"), "a", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed
        token = _read_token(path)  # created by another process meanwhile?
        if not token:
            token = secrets.token_urlsafe(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(token + "\n")
            os.chmod(path, 0o600)
    return token


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return ""


class VaultLock:
    """An exclusive lock per vault database; the OS drops it when a daemon dies, so a
    stale lock from a crashed daemon is simply taken over."""

    def __init__(self, db_path: Path):
        self.path = paths.lock_path(db_path)
        self.handle = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                owner = str(json.loads(owner).get("pid", owner))
            raise ConfigError(f"another lenslink daemon (pid {owner}) is serving this vault; "
                              "stop it first") from None
        self.handle = handle
        self._write(str(os.getpid()))

    def announce(self, host: str, port: int, instance: str) -> None:
        """Say where this daemon serves (read by `client.find`: the CLI asks it, after
        `/v1/health` has confirmed the same `instance`)."""
        self._write(json.dumps({"pid": os.getpid(), "host": host, "port": port,
                                "instance": instance}))

    def _write(self, text: str) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(text)
        self.handle.flush()

    def release(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self._write("")  # no longer serving: nothing to announce
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


# -- the service ----------------------------------------------------------------------
@dataclass
class DaemonState:
    phase: str = "starting"           # starting | indexing | ready | error | stopping
    progress: dict | None = None      # {"stage", "done", "total"} while indexing
    last_error: str | None = None
    last_sync: float | None = None
    retry_at: float | None = None
    batches: int = 0
    written: int = 0
    pending_writes: dict[str, float] = field(default_factory=dict)
    # auto writes skipped while a note's texts had no vector: written once they have
    waiting_writes: set[str] = field(default_factory=set)
    training: bool = False            # the rankers are being retrained in the background
    last_training: dict | None = None  # {"at", "seconds", "reports"} or {"at", "error"}
    config_error: str | None = None   # .lenslink.toml was changed into something invalid


class Service:
    """The daemon's library core: a vault, a change queue and one worker thread."""

    def __init__(self, vault: str | os.PathLike, db: str | os.PathLike | None = None,
                 embedder: str | None = None, write_policy: str = "manual",
                 quiet: float = 30.0, debounce: float = 1.0, watch: bool = True):
        if write_policy not in WRITE_POLICIES:
            raise ConfigError(f"write policy must be one of {', '.join(WRITE_POLICIES)}")
        self._config_stamp = _stamp(paths.vault_root(vault))  # before it is read: see _config_changed
        self._config_seen = self._config_stamp
        self.vault = Vault(vault, db=db, embedder=embedder)
        self.vault.build_apart = True  # the daemon lives long: a build's memory goes with its process
        self.reader = Store.open(self.vault.db_path)
        self.read_lock = threading.Lock()
        self.lock = threading.RLock()         # everything that writes
        self.asked_policy = write_policy      # `writer` in .lenslink.toml may turn it off
        self.write_policy = self._policy()
        self.quiet = quiet
        self.debounce = debounce
        self.watch = watch
        self.queue = ChangeQueue()
        self.stop_event = threading.Event()
        self.vault.stop_builds = self.stop_event  # a snapshot being built is stopped with it
        self.state = DaemonState()
        self._retry_delay = RETRY_MIN
        self._unsynced: dict | None = None    # content hashes from before a sync that failed
        self._last_use: float | None = None   # when a query, sync or write last ranked
        self._rebuild = False
        self._observer = None
        self._worker: threading.Thread | None = None
        self._trainer: threading.Thread | None = None
        self._models_changed = threading.Event()
        self._status_cache: tuple[tuple, dict, float] | None = None
        self.instance = secrets.token_hex(8)  # told by /v1/health, announced in the lock
        self.ready = threading.Event()

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        """Start watching, then sync in the worker (events during the sync are queued)."""
        if self.watch:
            self._observer = start_observer(self.vault.root, self.queue, self._wanted)
        self._worker = threading.Thread(target=self._run, name="lenslink-worker", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.state.phase = "stopping"
        self.stop_event.set()
        self.queue.wake()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._worker is not None:
            self._worker.join(timeout)
        if self._trainer is not None:
            self._trainer.join(timeout)
        self.reader.close()
        self.vault.close()

    def _wanted(self, rel: str) -> bool:
        return is_note_path(rel, self.vault.config.exclude)

    def _policy(self) -> str:
        if not self.vault.writes_here and self.asked_policy != "off":
            log.info("blocks are written by %s (writer in .lenslink.toml): not writing here",
                     self.vault.config.writer)
            return "off"
        return self.asked_policy

    # -- .lenslink.toml -----------------------------------------------------------
    def _config_changed(self) -> bool:
        """Re-read .lenslink.toml once its file changed and then stayed the same for one
        more turn of the worker (half a second or more: not half-saved). The watcher
        ignores dot files, so the file is looked at on every turn. True when a different
        config was taken; an invalid or unreadable one is reported (log, `config_error` in
        status) and the one in use kept. A new embedder needs a restart (its vectors are
        all new): it is kept as it was. HTTP threads answer from the ranking's config
        (`Vault.ranked_config`) until the sync that follows has loaded a new ranking."""
        stamp = _stamp(self.vault.root)
        if stamp == self._config_stamp:
            self._config_seen = stamp
            return False
        if stamp != self._config_seen:  # changed since the last look: wait for one more
            self._config_seen = stamp
            return False
        self._config_stamp = stamp
        try:
            config = load_config(self.vault.root)
        except (ConfigError, OSError) as exc:
            message = str(exc) if isinstance(exc, ConfigError) else \
                f"{self.vault.root / CONFIG_NAME}: cannot read ({exc.strerror or exc})"
            self.state.config_error = message
            log.warning("%s; still using the config read before", message)
            return False
        self.state.config_error = None
        old = self.vault.config
        if (config.embedder, config.embedder_options) != (old.embedder, old.embedder_options):
            self.state.config_error = (f"{CONFIG_NAME} names another embedder (or options): "
                                       "restart the daemon to switch; the other settings are applied")
            log.warning("%s", self.state.config_error)
            config = dataclasses.replace(config, embedder=old.embedder,
                                         embedder_options=old.embedder_options)
        if config == old:
            return False
        with self.lock:
            self.vault.config = config
            self.write_policy = self._policy()
        log.info("%s changed (lenses: %s): syncing the vault with it", CONFIG_NAME,
                 ", ".join(lens.name for lens in config.lenses))
        return True

    # -- the worker ---------------------------------------------------------------
    def _run(self) -> None:
        try:  # answer from the state saved at the last stop while the first sync runs
            if self.vault.load_saved():
                self._used()
        except LenslinkError as exc:
            log.warning("the saved ranking snapshot was not loaded: %s", exc)
        self._sync(None)
        while not self.stop_event.is_set():
            try:
                self._turn()
            except Exception:  # never the end of the worker: the daemon would stop syncing
                log.exception("the worker failed; going on")
                self.queue.put(RESCAN)  # what that turn was given: look at everything
                self.stop_event.wait(1.0)

    def _turn(self) -> None:
        batch = self.queue.wait_batch(self.debounce, timeout=self._timeout())
        if self.stop_event.is_set():
            return
        rebuild, self._rebuild = self._rebuild, False
        if self._models_changed.is_set():
            self._load_models()
        retry = self._retry_due()
        verify = not batch and self._verify_due()
        reload = self._config_changed()
        if batch or rebuild or retry or verify or reload:
            # a retry looks at everything: the failed batch's notes are not queued any more
            full = RESCAN in batch or rebuild or retry or verify or reload
            self._sync(None if full else sorted(batch), rebuild, verify, reload)
        self._write_due()
        self._release_if_idle()

    def _used(self) -> None:
        """Queries, syncs and writes map snapshot pages: noted for `_release_if_idle`."""
        self._last_use = time.monotonic()

    def _release_if_idle(self) -> None:
        """Once nothing used the ranking for RELEASE_AFTER seconds, unmap the snapshot
        pages it mapped (`snapshot.release_pages`), under the lock that updates hold."""
        if self._last_use is None or time.monotonic() - self._last_use < RELEASE_AFTER \
                or not self.vault.loaded:
            return
        self._last_use = None
        with self.lock:
            released = snapshot.release_pages(self.vault.ranking())
        if released:
            log.debug("unmapped %.0f MB of the ranking snapshot", released / 2 ** 20)

    def _timeout(self) -> float:
        due = [t for t in self.state.pending_writes.values()]
        if self.state.retry_at:
            due.append(self.state.retry_at)
        return max(0.05, min([0.5] + [t - time.monotonic() for t in due]))

    def _verify_due(self) -> bool:
        """Whether the daily hash sweep is due (the mtime/size fast path misses a change
        whose modification time was restored); only when idle, and not while failing."""
        if self.state.retry_at is not None or self.state.pending_writes:
            return False
        last = float(self.vault.store.get_meta("verified_at") or 0)
        return time.time() - last >= VERIFY_EVERY

    def _retry_due(self) -> bool:
        return self.state.retry_at is not None and time.monotonic() >= self.state.retry_at

    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.stop_event.is_set():
            raise Cancelled()
        self.state.progress = {"stage": stage, "done": done, "total": total}

    def _sync(self, changed: list[str] | None, rebuild: bool = False, verify: bool = False,
              reload: bool = False) -> None:
        """Sync `changed` (None: the vault); `reload`: after .lenslink.toml changed, when
        notes it newly includes are not edits (their blocks are not written by `auto`)."""
        self.state.phase = "indexing"
        started = time.monotonic()
        try:
            with self.lock:
                store = self.vault.store
                # Content hashes before the sync (what it found stored; a rebuild resets
                # the store first), compared with those of the notes it stored or touched.
                # A failed sync's are kept: the notes it stored are still edits that need
                # their auto write, found by comparing every note the next time.
                report = index_mod.SyncReport()
                prior = store.content_hashes() if rebuild else None
                try:
                    self.vault.index(rebuild=rebuild, paths=changed, progress=self._progress,
                                     verify=verify, report=report)
                    if prior is None:
                        prior = report.known_hashes()
                    recovering = self._unsynced is not None
                    before = self._unsynced if recovering else prior
                    full = rebuild or recovering  # every note compared
                    after = store.content_hashes(None if full else {*report.changed, *report.touched})
                    gone = set(report.removed) | (before.keys() - after.keys() if full else set())
                    edited = self._edited(before, after) | gone
                    if rebuild or not self.vault.loaded or self.vault.ranked_config != self.vault.config:
                        self.vault.refresh()
                    else:  # only what changed (our own block writes change nothing)
                        self.vault.refresh(sorted(edited | set(report.embedded_paths)))
                    self._train_if_links_grew()
                except BaseException:
                    # the states from before the first failed sync, if it got to read them
                    # (before that it stored nothing)
                    if self._unsynced is None:
                        if prior is None and report.known is not None:
                            prior = report.known_hashes()
                            if report.targeted is not None:  # the other notes as stored:
                                targeted = set(report.targeted)  # this sync left them alone
                                prior = {p: h for p, h in store.content_hashes().items()
                                         if p not in targeted} | prior
                        self._unsynced = prior
                    raise
            self._unsynced = None
            self._used()
            self.state.last_sync = time.time()
            self.state.batches += 1
            self.state.last_error = None
            self.state.retry_at = None
            self._retry_delay = RETRY_MIN
            self.state.phase = "ready"
            whole = changed is None  # else the notes synced are named already
            log.info("synced %s: %d stored%s, %d removed%s, %d text%s embedded (%.2f s)",
                     "the vault" if whole else _names(changed), len(report.changed),
                     _listed(report.changed) if whole else "", len(report.removed),
                     _listed(report.removed) if whole else "", report.embedded,
                     "" if report.embedded == 1 else "s", time.monotonic() - started)
            for path, problem in report.problems:
                log.warning("%s%s", f"{path}: " if path else "", problem)
            if self.write_policy == "auto":
                ready = self.state.waiting_writes & set(report.embedded_paths)
                self.state.waiting_writes -= ready | gone
                self._schedule_writes(((edited & before.keys() if reload else edited) | ready) - gone,
                                      gone)
        except Cancelled:
            log.info("stopping: abandoned the current batch (what was stored is kept)")
        except LenslinkError as exc:
            self._failed(str(exc))
        except Exception as exc:  # the daemon logs a failure and keeps going
            log.exception("sync failed")
            self._failed(f"{type(exc).__name__}: {exc}")
        finally:
            self.state.progress = None
            self.ready.set()

    def _train_if_links_grew(self) -> None:
        """Retrain the lens rankers once enough new links appeared (20, or 10% more), in
        a background thread with its own database connection: edits go on meanwhile,
        and the new rankers are swapped in when they are stored."""
        if self._trainer is not None and self._trainer.is_alive():
            return
        from . import learn
        store = self.vault.store
        trained = int(store.get_meta("trained_links") or 0)
        # rankers stored by a lenslink with other features cannot be used: train again
        outdated = trained and store.get_meta("trained_features") != ",".join(learn.FEATURES)
        links = store.link_count()
        if outdated or links - trained >= max(TRAIN_MIN_NEW_LINKS, 0.1 * trained):
            log.info("training the lens rankers in the background (%d links, %d at the last "
                     "training)", links, trained)
            self.state.training = True
            self._trainer = threading.Thread(target=self._train, name="lenslink-trainer", daemon=True)
            self._trainer.start()

    def _train(self) -> None:
        started = time.monotonic()
        try:
            with Vault(self.vault.root, db=self.vault.db_path, embedder=self.vault.embedder_name,
                       config=self.vault.config) as vault:
                vault.build_apart = self.vault.build_apart  # a snapshot it needs: in a child
                vault.stop_builds = self.stop_event
                reports = vault.train(check=self._check_stop)
            seconds = round(time.monotonic() - started, 1)
            self.state.last_training = {"at": time.time(), "seconds": seconds, "reports": reports}
            log.info("trained in %.1f s: %s", seconds, "; ".join(
                f"{name} {'learned' if r['trained'] else 'not trained (' + r['reason'] + ')'}"
                for name, r in reports.items()) or "no lens")
            self._models_changed.set()
            self.queue.wake()
        except Cancelled:
            log.info("stopping: training abandoned")
        except Exception as exc:  # the daemon goes on with the rankers it has
            log.exception("training failed")
            self.state.last_training = {"at": time.time(), "error": f"{type(exc).__name__}: {exc}"}
            # do not retry on every batch: wait for more links
            from . import learn
            with self.lock:
                self.vault.store.set_meta("trained_links", str(self.vault.store.link_count()))
                self.vault.store.set_meta("trained_features", ",".join(learn.FEATURES))
        finally:
            self.state.training = False

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise Cancelled()

    def _load_models(self) -> None:
        """Swap in the rankers the trainer stored (a full load of the snapshot)."""
        self._models_changed.clear()
        try:
            with self.lock:
                self.vault.refresh()
        except LenslinkError as exc:
            self._failed(str(exc))

    def _failed(self, message: str) -> None:
        self.state.last_error = message
        self.state.phase = "error"
        self.state.retry_at = time.monotonic() + self._retry_delay
        log.error("%s (retrying in %.0f s)", message, self._retry_delay)
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
        try:
            with self.lock:
                self.vault.refresh()  # serve what is stored so far
        except LenslinkError:
            pass

    def _schedule_writes(self, edited: set[str], gone: set[str]) -> None:
        """In auto mode, a note whose content changed (`edited`, our own writes left out)
        gets its own block rewritten once it has been quiet for `quiet` seconds."""
        due = time.monotonic() + self.quiet
        for path in edited:
            self.state.pending_writes[path] = due
        for path in gone:
            self.state.pending_writes.pop(path, None)

    def _edited(self, before: dict[str, str], after: dict[str, str]) -> set[str]:
        """Notes added or changed between two `content_hashes`, our own block writes
        left out."""
        store = self.vault.store
        return {p for p, h in after.items()
                if before.get(p) != h and store.written_hash(p) != h}

    def _write_due(self) -> None:
        now = time.monotonic()
        for path, due in sorted(self.state.pending_writes.items()):
            if self.stop_event.is_set():
                return
            # a note with an event waiting is synced first (and rescheduled then); the
            # events of our own writes to other notes do not hold the others back
            if due <= now and path not in self.queue:
                del self.state.pending_writes[path]
                self._used()
                try:
                    outcomes = self.write(path)
                except LenslinkError as exc:  # e.g. the note vanished while a sync failed
                    log.warning("%s: not written: %s", path, exc)
                    continue
                except Exception:  # never let one note stop the worker
                    log.exception("%s: not written", path)
                    continue
                for outcome in outcomes:
                    if outcome["status"] in ("error", "edited"):
                        log.warning("%s: %s", path, outcome["detail"])
                    elif outcome["status"] == "skipped" and outcome["detail"].startswith(NOT_EMBEDDED):
                        self.state.waiting_writes.add(path)  # written when it is embedded

    # -- what the API calls -------------------------------------------------------
    def status(self) -> dict:
        s = self.state
        # what the store holds changes only with a sync or a write: cache it until then
        key = (s.batches, s.written, s.phase, id(self.vault._index))
        cached = self._status_cache
        # Counting a large store takes seconds (5 s at 100,000 notes): after a change, a
        # count that took over half a second may be reused for twice as long as it took,
        # so that polling clients never keep the daemon counting. Phase, progress and
        # queue below are always live.
        if cached is None or ((cached[0] != key or s.phase != "ready") and time.monotonic() > cached[2]):
            start = time.monotonic()
            with self.read_lock:
                info = self.vault.status(store=self.reader)
            now = time.monotonic()
            reuse = 2 * (now - start) if now - start > 0.5 else 0.0
            self._status_cache = cached = (key, info, now + reuse)
        info = dict(cached[1])
        info.update({"phase": s.phase, "progress": s.progress, "queue": len(self.queue),
                     "last_error": s.last_error, "last_sync": s.last_sync,
                     "write_policy": self.write_policy, "pending_writes": len(s.pending_writes),
                     "written": s.written, "training": s.training,
                     "last_training": s.last_training, "config_error": s.config_error})
        return info

    def _require_index(self) -> None:
        if not self.vault.loaded:
            raise NotReady("the first index is still being built; see /v1/status for progress")

    def related(self, path: str, lens: str | None = None, top: int | None = None) -> dict:
        self._require_index()
        self._used()
        vault = self.vault
        path = vault.resolve_note(path)
        found = vault.related(path, lens, top)
        why = None
        if not found:
            with self.read_lock:
                why = vault.unranked_reason(path, lens, store=self.reader)
            why = why or vault.below_floor(path, lens)
        return {"note": path, "lens": vault.ranked_config.lens(lens).name,
                "related": [r.to_dict() for r in found], "why_none": why}

    def block(self, path: str) -> dict:
        self._require_index()
        self._used()
        path = self.vault.resolve_note(path)
        with self.read_lock:
            self.vault.check_embedded(path, store=self.reader)
        path, opted_out, groups, text = self.vault.render_block(path, check=False)
        return {"path": path, "block": text, "opted_out": opted_out,
                "heading": self.vault.ranked_config.heading,
                "groups": [{"lens": lens, "paths": paths} for lens, paths in groups if paths],
                "block_hash": hashlib.sha256(text.encode()).hexdigest()}

    def write(self, path: str, force: bool = False, remove: bool = False) -> list[dict]:
        if not self.vault.writes_here:
            self.vault._check_writer()  # says which computer writes this vault's blocks
        if self.write_policy == "off":
            raise ConfigError("write-back is off for this daemon (start it with --write manual or auto)")
        with self.lock:
            outcomes = (self.vault.remove_blocks if remove else self.vault.write)([path], force=force)
            if remove:  # not written back by a pending auto write either
                self.state.pending_writes.pop(path, None)
        self.state.written += sum(o.status in ("written", "removed") for o in outcomes)
        for o in outcomes:
            if o.status not in ("error", "edited"):  # those are warnings, or told to the caller
                log.info("%s: block %s%s", o.path, o.status, f" ({o.detail})" if o.detail else "")
        return [{"path": o.path, "status": o.status, "detail": o.detail} for o in outcomes]

    def reindex(self, path: str) -> dict:
        """Queue a note for a sync: one in the vault, or one the index holds (so that a
        deletion is synced too); anything else is refused."""
        if not self._wanted(path):
            raise UnsafePathError(f"refusing {path!r}: excluded by `exclude` in .lenslink.toml, "
                                  "so not a note lenslink indexes")
        if not (self.vault.root / path).is_file():
            with self.read_lock:
                known = self.reader.note(path) is not None
            if not known:
                raise NotFound(f"no note {path!r} in the vault or in the index")
        self.queue.put(path)
        return {"queued": path}

    def rebuild(self) -> dict:
        self._rebuild = True
        self.queue.wake()
        return {"rebuild": "started"}


def _stamp(root: Path) -> tuple | None:
    """What tells that .lenslink.toml changed: (mtime, size, inode); None without one."""
    try:
        info = os.stat(root / CONFIG_NAME)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _names(paths: list[str], most: int = 5) -> str:
    """`a.md, b.md and 3 more` for a log line."""
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _listed(paths: list[str]) -> str:
    return f" ({_names(paths)})" if paths else ""


def serve(vault, *, db=None, embedder=None, host: str = "127.0.0.1", port: int = 8765,
          allow_remote: bool = False, write_policy: str = "manual", quiet: float = 30.0,
          debounce: float = 1.0, on_ready=None) -> None:
    """Run the daemon until SIGTERM/SIGINT: lock, sync, watch, serve; exits cleanly."""
    import signal

    from .server import ApiServer

    new_db = not paths.db_path(paths.vault_root(vault), db).exists()
    service = Service(vault, db=db, embedder=embedder, write_policy=write_policy,
                      quiet=quiet, debounce=debounce)
    lock = VaultLock(service.vault.db_path)
    try:
        lock.acquire()
        service.vault.embedder  # an unknown or unavailable embedder: refused now, not retried
        server = ApiServer(service, host, port, load_token(), allow_remote=allow_remote)
    except BaseException:
        # a failed start leaves no database of its own: one it made that is still empty
        # (not one a `lenslink index` began meanwhile)
        empty = new_db and lock.handle is not None and service.vault.store.is_empty()
        service.reader.close()
        service.vault.close()
        if empty:
            for extra in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(str(service.vault.db_path) + extra).unlink()
        lock.release()
        raise
    stopping = threading.Event()

    def on_signal(signum, frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        lock.announce(*server.server_address[:2], service.instance)
        if on_ready:
            on_ready(server.server_address)
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        service.stop()
        lock.release()
        for s, handler in previous.items():
            signal.signal(s, handler)
