"""Ask a running daemon instead of loading the ranking: what makes `lenslink related`
answer in a fraction of a second on a large vault while `lenslink serve` runs.

The daemon holds an exclusive lock on `DB.lock` and writes where it serves into it
(`VaultLock.announce`). A CLI that finds that process alive and an answer at that
address asks the daemon; anything else (no daemon, another version, an error) returns
None and the caller ranks by itself.
"""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .config import lock_path, process_running
from .rank import Related

TIMEOUT_S = 10.0


def find(db_path: Path) -> tuple[str, int, str] | None:
    """(host, port, instance id) the daemon serving this database announced, or None.
    The lock is not touched (taking it, even shared, could make a daemon starting that
    instant fail); `related` confirms the instance before it sends the token."""
    lock = lock_path(db_path)
    try:
        where = json.loads(lock.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(where, dict) or not isinstance(where.get("port"), int) \
            or not isinstance(where.get("pid"), int) or not isinstance(where.get("instance"), str):
        return None  # a daemon still starting, stopped, or one that does not announce itself
    if not process_running(where["pid"]):  # (another user's: the instance check decides)
        return None
    host = str(where.get("host") or "127.0.0.1")
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return host, where["port"], where["instance"]


def starting(db_path: Path, within: float = 60.0) -> bool:
    """Whether a daemon took this database's lock in the last `within` seconds and has
    not announced where it serves yet (its lock file holds only its live pid)."""
    lock = lock_path(db_path)
    try:
        text, age = lock.read_text(encoding="utf-8").strip(), time.time() - lock.stat().st_mtime
        pid = int(text)
    except (OSError, ValueError):
        return False
    return age <= within and process_running(pid)


def _get(host: str, port: int, path: str, token: str | None = None):
    host = f"[{host}]" if ":" in host else host  # IPv6
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return json.loads(response.read())


def related(db_path: Path, config, path: str, lens: str | None,
            top: int | None) -> list[Related] | None:
    """The daemon's answer to `related(path, lens, top)`, or None to rank locally: also
    when the process at the announced address is not that daemon (its instance id
    differs) or it ranks with another config (started before `.lenslink.toml` changed)."""
    where = find(db_path)
    if where is None or top is not None and top > 100:
        return None
    from .daemon import load_token

    host, port, instance = where
    try:
        health = _get(host, port, "/v1/health")  # needs no token: the token goes only to it
        if health.get("instance") != instance or health.get("config") != config.fingerprint:
            return None
        token = load_token(create=False)
        query = {"path": path, **({"lens": lens} if lens else {}), **({"top": top} if top else {})}
        body = _get(host, port, f"/v1/related?{urllib.parse.urlencode(query)}", token)
        return [_related(item) for item in body["related"]]
    except Exception:  # anything at all: rank locally
        return None


def _related(d: dict) -> Related:
    reason = d["reason"]
    return Related(path=d["path"], title=d["title"], score=d["score"], score_kind=d["score_kind"],
                   linked=d["linked"], raw=reason["raw"], cosine=reason["cosine"],
                   lexical=reason["lexical"], mentioned=reason["title_mentioned"],
                   passage=reason["passage"], lens=reason["lens"],
                   signals=tuple(reason.get("signals", {}).items()))
