"""Crash torture: `lenslink index` and `lenslink write --all` killed with SIGKILL at 24
points chosen by a seeded generator (in the middle of an SQLite transaction, between
writing a temp file and swapping it in, right after the swap, ...), one after the other
on the same vault and database. After each kill:

- every note is its old or its new version: the person's text is intact and the block
  is whole or absent;
- the database opens and passes `PRAGMA integrity_check`;
- the next `lenslink index` embeds nothing that was already stored;
- after that run no temp file is left in the vault.

`LENSLINK_CRASH_AT=name:n` (lenslink/faults.py) makes the process kill itself at the
n-th time it reaches that point. LENSLINK_TORTURE=N runs N kills instead of 24.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

from daemon_helpers import make_notes
from lenslink.block import find_block, remove_block

TESTS = Path(__file__).resolve().parent
KILLS = int(os.environ.get("LENSLINK_TORTURE", "24"))
POINTS = {  # command -> crash points it passes, and how many times at most
    "index": [("store.put_note", 12), ("store.put_vectors", 3)],
    "write": [("write.temp_written", 8), ("write.swapped", 8), ("store.remember_write", 8)],
}


def run(vault: Path, db: Path, *args: str, crash: str | None = None, log: Path | None = None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LENSLINK_CRASH_AT", None)
    if crash:
        env["LENSLINK_CRASH_AT"] = crash
    if log:
        env["FAKE_EMBED_LOG"] = str(log)
    return subprocess.run([sys.executable, str(TESTS / "fake_embedder.py"), *args, str(vault),
                           "--db", str(db), "--embedder", "fake"],
                          capture_output=True, text=True, env=env, timeout=300)


def stored_vectors(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return {r[0] for r in con.execute("SELECT text_hash FROM vectors")}
    finally:
        con.close()


def test_kill_9_at_random_points_loses_nothing(tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    originals = make_notes(vault, 30)
    # a few notes with links, CRLF and no final newline, so write-back has real work
    for i, rel in enumerate(sorted(originals)[:6]):
        text = originals[rel].replace("\n", "\r\n") if i % 2 else originals[rel].rstrip("\n")
        originals[rel] = text
        (vault / rel).write_bytes(text.encode("utf-8"))
    db = tmp_path / "index.db"
    rng = random.Random(20261127)
    survived = []
    for kill in range(KILLS):
        command = "write" if kill % 2 else "index"
        if command == "write":  # write-back needs an index of the notes as they are
            assert run(vault, db, "index").returncode == 0
        point, most = rng.choice(POINTS[command])
        at = rng.randint(1, most)
        # the person keeps writing: new text to index, and blocks that will change
        for rel in rng.sample(sorted(originals), 12):
            now = (vault / rel).read_bytes().decode("utf-8")
            ending = "\r\n" if "\r\n" in now else "\n"
            add = f"{ending}Edit {kill}: more about {rel.split('-')[0]} and note{kill}{ending}"
            (vault / rel).write_bytes((now + add).encode("utf-8"))
            originals[rel] = remove_block(now + add)
        args = ["write", "--all"] if command == "write" else ["index"]
        if command == "index" and rng.random() < 0.3:
            args.append("--rebuild")
        result = run(vault, db, *args, crash=f"{point}:{at}")
        killed = result.returncode == -9
        survived.append((command, point, at, killed))
        assert killed or result.returncode == 0, result.stderr

        # every note: the person's text as it was, the block whole or absent
        for rel, text in originals.items():
            now = (vault / rel).read_bytes().decode("utf-8")
            find_block(now)  # raises on half a block
            assert remove_block(now) == text, (kill, point, rel)
        before = stored_vectors(db) if db.exists() else set()
        log = tmp_path / f"embedded-{kill}.log"
        again = run(vault, db, "index", log=log)
        assert again.returncode == 0, again.stderr
        embedded = set(log.read_text().split()) if log.exists() else set()
        assert embedded.isdisjoint(before), (kill, point, at)  # nothing embedded twice
        leftovers = [p.name for p in vault.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
        assert leftovers == [], (kill, point, leftovers)
    kills = [s for s in survived if s[3]]
    assert len(kills) >= 20, survived  # most points were reached and killed there
    print(f"\n{len(kills)} kills survived: " + ", ".join(f"{c}@{p}:{n}" for c, p, n, k in kills))
