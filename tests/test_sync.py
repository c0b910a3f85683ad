"""One vault synced between two computers, each running `lenslink serve --write auto`:
no endless conflicting edits. Two daemons (subprocesses with their own database and
machine name) on two copies of a vault; a copy loop stands in for the sync tool (newer
file wins, like Syncthing or iCloud).

- With `writer = "..."` in .lenslink.toml only that machine writes blocks.
- Without it both may write, but only the block's content decides whether a write is
  needed and rankings are deterministic, so the two agree and the copies converge.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daemon_helpers import make_notes, ready_status, serve_process, wait_for  # noqa: F401
from lenslink.block import START


def notes_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.md"))}


def sync_once(a: Path, b: Path) -> int:
    """Copy each note that differs to the other side, the newer one winning."""
    copied = 0
    left, right = notes_of(a), notes_of(b)
    for rel in sorted(set(left) | set(right)):
        if left.get(rel) == right.get(rel):
            continue
        src, dst = (a, b) if rel in left and (rel not in right or
                                              (a / rel).stat().st_mtime_ns >= (b / rel).stat().st_mtime_ns) else (b, a)
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)
        copied += 1
    return copied


def idle(api) -> bool:
    s = api.get("/v1/status").json
    return s["phase"] == "ready" and s["queue"] == 0 and s["pending_writes"] == 0


def settle(a: Path, b: Path, apis, rounds: int = 20) -> int:
    """Sync until nothing moves while both daemons are idle; the rounds it took."""
    quiet = 0
    for n in range(1, rounds + 1):
        for api in apis:
            wait_for(lambda: idle(api), message="a daemon to become idle")
        if sync_once(a, b) == 0:
            quiet += 1
            if quiet == 3:
                return n
        else:
            quiet = 0
    raise AssertionError(f"the two copies still differ after {rounds} rounds: endless edits")


@pytest.mark.parametrize("writer", ["machine-a", None], ids=["one-writer", "both-write"])
def test_two_daemons_on_two_synced_copies_converge(tmp_path, serve_process, writer):
    a, b = tmp_path / "a" / "vault", tmp_path / "b" / "vault"
    a.mkdir(parents=True)
    make_notes(a, 12)
    if writer:
        (a / ".lenslink.toml").write_text(f'writer = "{writer}"\n', encoding="utf-8")
    shutil.copytree(a, b, dirs_exist_ok=True)
    args = ("--write", "auto", "--quiet", "0")
    da = serve_process(a, *args, env={"LENSLINK_MACHINE": "machine-a"})
    db = serve_process(b, *args, env={"LENSLINK_MACHINE": "machine-b"})
    apis = [da.wait_serving(), db.wait_serving()]
    for api in apis:
        ready_status(api)
    settle(a, b, apis)

    # an edit on B, the machine that does not write when A is the writer
    note = sorted(notes_of(b))[0]
    with open(b / note, "a", encoding="utf-8") as f:
        f.write("\nA thought added on the other computer.\n")
    rounds = settle(a, b, apis)
    assert rounds <= 8
    assert notes_of(a) == notes_of(b)
    assert START in (a / note).read_text(encoding="utf-8")
    assert "A thought added on the other computer." in (a / note).read_text(encoding="utf-8")
    written = [api.get("/v1/status").json["written"] for api in apis]
    statuses = [api.get("/v1/status").json for api in apis]
    if writer:
        assert written[1] == 0 and statuses[1]["write_policy"] == "off"
        assert statuses[1]["writer"] == "machine-a" and statuses[1]["machine"] == "machine-b"
        resp = apis[1].post("/v1/write", {"path": note})
        assert resp.status == 400 and "written by 'machine-a'" in resp.error["message"]
    assert written[0] > 0
    # and then nothing moves any more: no daemon keeps rewriting what the other wrote
    before = notes_of(a)
    assert settle(a, b, apis) == 3 and notes_of(a) == before
