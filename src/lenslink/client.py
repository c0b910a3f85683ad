"""Ask a running daemon instead of loading the ranking: what makes `lenslink related`
answer in a fraction of a second on a large vault while `lenslink serve` runs.

The daemon holds an exclusive lock on `DB.lock` and writes where it serves into it
(`VaultLock.announce`). A CLI that finds that lock held and an answer at that address
asks the daemon; anything else (no daemon, another version, an error) returns None and
the caller ranks by itself.
"""
from __future__ import annotations

import fcntl
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .rank import Related

TIMEOUT_S = 10.0


def find(db_path: Path) -> tuple[str, int] | None:
    """(host, port) of the daemon serving this database, or None."""
    lock = db_path.with_suffix(db_path.suffix + ".lock")
    try:
        with open(lock, encoding="utf-8") as handle:
            try:  # a lock we can take is a lock nobody holds: no daemon
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
                return None
            except OSError:
                pass
            where = json.loads(handle.read() or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(where, dict) or not isinstance(where.get("port"), int):
        return None  # a daemon still starting, or one that does not announce itself
    return str(where.get("host") or "127.0.0.1"), where["port"]


def related(db_path: Path, path: str, lens: str | None, top: int | None) -> list[Related] | None:
    """The daemon's answer to `related(path, lens, top)`, or None to rank locally."""
    where = find(db_path)
    if where is None:
        return None
    from .daemon import load_token

    try:
        token = load_token(create=False)
    except Exception:  # no token: nothing to authenticate with
        return None
    host, port = where
    query = {"path": path, **({"lens": lens} if lens else {}), **({"top": top} if top else {})}
    url = f"http://{host}:{port}/v1/related?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            body = json.loads(response.read())
        return [_related(item) for item in body["related"]]
    except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError):
        return None


def _related(d: dict) -> Related:
    reason = d["reason"]
    return Related(path=d["path"], title=d["title"], score=d["score"], score_kind=d["score_kind"],
                   linked=d["linked"], raw=reason["raw"], cosine=reason["cosine"],
                   lexical=reason["lexical"], mentioned=reason["title_mentioned"],
                   passage=reason["passage"], lens=reason["lens"],
                   signals=tuple(reason.get("signals", {}).items()))
