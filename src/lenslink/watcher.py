"""Watch a vault with watchdog; the handler only enqueues, a worker drains after quiet.

A burst of events (a `git pull`, Obsidian saving every two seconds) becomes one batch:
`ChangeQueue.wait_batch` returns only once no event arrived for `quiet` seconds.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

RESCAN = "\0rescan"  # a folder moved or was deleted: look at everything
IGNORED_EVENTS = {"opened", "closed_no_write"}


class ChangeQueue:
    """A set of changed vault-relative paths with the time of the last event."""

    def __init__(self):
        self._paths: set[str] = set()
        self._last = 0.0
        self._woken = False
        self._cond = threading.Condition()

    def put(self, *paths: str) -> None:
        with self._cond:
            self._paths.update(paths)
            self._last = time.monotonic()
            self._cond.notify_all()

    def __contains__(self, path: str) -> bool:
        with self._cond:
            return path in self._paths or RESCAN in self._paths

    def __len__(self) -> int:
        with self._cond:
            return len(self._paths)

    def wait_batch(self, quiet: float, timeout: float) -> set[str]:
        """Wait at most `timeout` s for a batch: paths with no new event for `quiet` s.
        Returns and clears the batch, or returns an empty set (so callers can do timed
        work between batches)."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if self._paths and now >= self._last + quiet:
                    batch, self._paths = self._paths, set()
                    return batch
                if now >= end or self._woken:
                    self._woken = False
                    return set()
                wake = min(end, self._last + quiet) if self._paths else end
                self._cond.wait(max(wake - now, 0.001))

    def wake(self) -> None:
        """Make a waiting `wait_batch` return now (to stop, or to start a rebuild)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()


class VaultEventHandler(FileSystemEventHandler):
    """Translate watchdog events into vault-relative note paths on the queue."""

    def __init__(self, root: Path, queue: ChangeQueue, wanted: Callable[[str], bool]):
        self.root = str(root)
        self.queue = queue
        self.wanted = wanted

    def _rel(self, path: str | bytes) -> str | None:
        path = os.fsdecode(path)
        if not path.startswith(self.root + os.sep):
            return None
        return path[len(self.root) + 1:].replace(os.sep, "/")

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENTS:
            return
        paths = [event.src_path] + ([event.dest_path] if getattr(event, "dest_path", "") else [])
        if event.is_directory:
            if event.event_type in ("moved", "deleted"):
                rels = [r for r in map(self._rel, paths) if r is not None]
                if any(not any(p.startswith(".") for p in r.split("/")) for r in rels):
                    self.queue.put(RESCAN)
            return
        rels = [r for r in map(self._rel, paths) if r is not None and self.wanted(r)]
        if rels:
            self.queue.put(*rels)


def start_observer(root: Path, queue: ChangeQueue, wanted: Callable[[str], bool]) -> Observer:
    """A started watchdog observer on the vault (recursive)."""
    observer = Observer()
    observer.schedule(VaultEventHandler(root, queue, wanted), str(root), recursive=True)
    observer.daemon = True
    observer.start()
    return observer
