"""Ask a running daemon instead of loading the ranking: what makes `lenslink related`
answer in a fraction of a second on a large vault while `lenslink serve` runs.

The daemon holds an exclusive lock on `DB.lock` and writes where it serves into it
(`VaultLock.announce`). A CLI that finds that process alive and an answer at that
address asks the daemon; anything else (no daemon, another version, an error) returns
None and the caller ranks by itself.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .rank import Related

TIMEOUT_S = 10.0


def find(db_path: Path) -> tuple[str, int] | None:
    """(host, port) of the daemon serving this database, or None. The lock is not
    touched (taking it, even shared, could make a daemon starting that instant fail):
    the announced process must be alive, and a dead one's reused pid fails to answer."""
    lock = db_path.with_suffix(db_path.suffix + ".lock")
    try:
        where = json.loads(lock.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(where, dict) or not isinstance(where.get("port"), int) \
            or not isinstance(where.get("pid"), int):
        return None  # a daemon still starting, or one that does not announce itself
    try:
        os.kill(where["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
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
    host = f"[{host}]" if ":" in host else host  # IPv6
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
