"""A race: an editor keeps changing notes (appending, renaming, deleting, recreating, the
way Obsidian and sync tools do) while the daemon in `auto` mode keeps rewriting blocks.
Afterwards every line the editor wrote is in the final files exactly once, every block
is whole, and no temp file is left.

The editor's pauses are pacing, not the assertion mechanism: the test waits for the
daemon to become idle with a timeout and then reads the files.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from daemon_helpers import TOPICS, start_daemon, wait_for  # noqa: F401
from lenslink.block import find_block, remove_block

ITERATIONS = 150


def save(path: Path, text: str, rng: random.Random) -> None:
    """Save as editors do: in place (truncate and write) or to a temp file renamed over."""
    if rng.random() < 0.5:
        path.write_text(text, encoding="utf-8")
    else:
        temp = path.with_name(f".{path.name}.editor-tmp")
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)


@pytest.mark.parametrize("seed", [1, 2])
def test_an_editor_racing_the_auto_writer_loses_nothing(tmp_path, fake_embedder, start_daemon, seed):
    rng = random.Random(seed)
    root = tmp_path / "vault"
    root.mkdir()
    topics = sorted(TOPICS)
    expected: dict[str, list[str]] = {}  # note -> the lines the editor wrote, in order
    for i in range(8):
        rel = f"{topics[i % 4]} {i}.md"
        expected[rel] = [f"# {topics[i % 4]} {i}", f"{TOPICS[topics[i % 4]]} line-{seed}-{i}"]
        (root / rel).write_text("\n".join(expected[rel]) + "\n", encoding="utf-8")
    daemon = start_daemon(root, write_policy="auto", quiet=0.0, debounce=0.02)
    counter = 100
    for step in range(ITERATIONS):
        counter += 1
        action = rng.choices(["append", "rename", "delete", "create"], [70, 10, 8, 12])[0]
        notes = sorted(expected)
        if action == "append" or len(notes) < 3:
            rel = rng.choice(notes)
            path = root / rel
            line = f"{TOPICS[rng.choice(topics)]} line-{seed}-{counter}"
            text = path.read_text(encoding="utf-8")  # the block too, if it is there now
            save(path, text + ("" if text.endswith("\n") else "\n") + line + "\n", rng)
            expected[rel].append(line)
        elif action == "rename":
            rel = rng.choice(notes)
            new = f"renamed {counter}.md"
            os.rename(root / rel, root / new)
            expected[new] = expected.pop(rel)
        elif action == "delete":
            rel = rng.choice(notes)
            (root / rel).unlink()
            del expected[rel]
        else:
            rel = f"new {counter}.md"
            expected[rel] = [f"{TOPICS[rng.choice(topics)]} line-{seed}-{counter}"]
            save(root / rel, expected[rel][0] + "\n", rng)
        time.sleep(rng.uniform(0, 0.03))

    def idle():
        s = daemon.service
        return (len(s.queue) == 0 and not s.state.pending_writes and s.state.phase == "ready"
                and s.state.batches > 0)

    wait_for(idle, message="the daemon to catch up")
    time.sleep(0.3)  # a last event of our own writes may still be on its way
    wait_for(idle, message="the daemon to settle")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == sorted(expected), "a note appeared or vanished, or a temp file was left"
    blocks = 0
    for rel, lines in expected.items():
        text = (root / rel).read_text(encoding="utf-8")
        found = find_block(text)  # whole or absent: never half a block
        blocks += found is not None
        body = remove_block(text).splitlines()
        for line in lines:
            assert body.count(line) == 1, (rel, line, text)
        assert [ln for ln in body if ln.strip()] == lines, (rel, text)
    assert blocks > 0  # the daemon did write blocks meanwhile
    assert daemon.state.written > 0
