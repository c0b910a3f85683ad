"""A corpus of hostile and odd vault content, each item with its expected outcome: a
one-line problem naming the file (or nothing, where the content is merely odd), the rest
of the vault indexed, ranked and written, nothing crashing.

The corpus is built in a temporary folder by `build_corpus` (a 50 MB note and 100,000
links are not stored in the repository). `.lenslink.toml` mistakes are covered one by
one in test_lenses.py (`test_every_config_mistake_is_one_line_naming_the_key_and_the_fix`);
a note deleted between listing and reading in test_index.py.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenslink.block import START
from lenslink.cli import main

NORMAL = {f"ok/note {i}.md": f"# Note {i}\n\nsourdough bread flour water note{i} [[note {(i + 1) % 5}]]\n"
          for i in range(5)}

# relative path (as str, or bytes for names that are not UTF-8) -> expected outcome:
#   ("problem", text the one-line problem contains), ("indexed", None) or ("ignored", None)
EXPECTED: dict = {
    "binary.md": ("problem", "binary"),
    "huge.md": ("problem", "above the limit of 20000000 bytes"),
    "links.md": ("indexed", None),
    "/".join(f"d{i}" for i in range(60)) + "/deep.md": ("indexed", None),
    "new\nline.md": ("indexed", None),
    "emoji 😀 שלום.md": ("indexed", None),
    "readonly.md": ("indexed", None),
    "outside.md": ("problem", "outside the vault"),
    "loop": ("ignored", None),  # a symlinked folder inside the vault: its notes are listed once, where they are
    "broken fm.md": ("problem", "frontmatter"),
    "bad utf8 body.md": ("problem", "not valid UTF-8"),
    "empty.md": ("indexed", None),
    "bad name \ufffd.md": ("problem", "not valid UTF-8; rename it"),
}
BAD_NAME = b"bad name \xff.md"


def build_corpus(root: Path, outside: Path) -> None:
    for rel, text in NORMAL.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "binary.md").write_bytes(bytes(range(256)) * 40)
    with open(root / "huge.md", "wb") as f:  # 50 MB of plain text
        line = b"a very long note about sourdough and nothing else at all\n"
        f.write(line * (50_000_000 // len(line) + 1))
    (root / "links.md").write_text("".join(f"[[target {i}]]\n" for i in range(100_000)), encoding="utf-8")
    deep = root.joinpath(*[f"d{i}" for i in range(60)])
    deep.mkdir(parents=True)
    (deep / "deep.md").write_text("deep down: sourdough\n", encoding="utf-8")
    (root / "new\nline.md").write_text("a name with a newline, sourdough\n", encoding="utf-8")
    (root / "emoji 😀 שלום.md").write_text("emoji and RTL name, bread\n", encoding="utf-8")
    os.makedirs(os.fsencode(root), exist_ok=True)
    with open(os.path.join(os.fsencode(root), BAD_NAME), "wb") as f:
        f.write(b"a file name that is not UTF-8\n")
    (root / "readonly.md").write_text("read-only note about bread flour\n", encoding="utf-8")
    (root / "readonly.md").chmod(0o444)
    (outside / "secret.md").write_text("outside the vault\n", encoding="utf-8")
    (root / "outside.md").symlink_to(outside / "secret.md")
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "broken fm.md").write_text("---\ntitle: [unclosed\n---\nbody text about bread\n", encoding="utf-8")
    (root / "bad utf8 body.md").write_bytes(b"caf\xe9 bread and flour\n")
    (root / "empty.md").write_bytes(b"")


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def corpus(tmp_path, fake_embedder):
    root, outside = tmp_path / "vault", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    build_corpus(root, outside)
    yield root
    (root / "readonly.md").chmod(0o644)


def test_hostile_corpus_is_indexed_reported_and_written_without_a_crash(corpus):
    result = run("index", corpus, "--embedder", "fake")
    assert result.exit_code == 0, result.output
    status = json.loads(run("status", corpus, "--json").stdout)
    problems = status["problems"]
    with_problems = {p for p in problems if p}
    for rel, (outcome, text) in EXPECTED.items():
        if outcome == "problem":
            hits = [m for p, ms in problems.items() for m in ms if p == rel or p.startswith(rel)]
            hits += [line for line in result.stderr.splitlines() if rel in line]
            assert any(text in h for h in hits), (rel, problems, result.stderr)
        else:
            assert rel not in with_problems, (rel, problems.get(rel))
    for messages in problems.values():
        assert all("\n" not in m for m in messages)  # one line each
    # every other note is indexed: the normal ones, and the odd-but-fine ones
    indexed = set(json.loads(run("related", corpus, "--all", "--json").stdout))
    want = set(NORMAL) | {r for r, (o, _) in EXPECTED.items() if o == "indexed"}
    assert want <= indexed | {"empty.md"}, want - indexed
    assert status["notes"] >= len(want)
    assert not any(p.startswith("loop/") for p in indexed)
    found = json.loads(run("related", corpus, "ok/note 0.md", "--json").stdout)
    assert found["related"]

    # write-back: every block written except the read-only note, which is left alone
    before = (corpus / "readonly.md").read_bytes()
    result = run("write", corpus, "--all")
    assert "skipped: readonly.md: the note is read-only" in result.stderr  # said, not hidden
    assert "error: bad utf8 body.md: not valid UTF-8" in result.stderr
    assert "changed since the last index" not in result.stderr  # notes refused stay refused
    assert result.exit_code == 1  # a note that could not be written
    assert (corpus / "readonly.md").read_bytes() == before
    assert START in (corpus / "ok/note 0.md").read_text(encoding="utf-8")
    assert (corpus / "huge.md").stat().st_size > 50_000_000  # never touched
    assert not (Path(corpus).parent / "outside" / "secret.md").read_text().count(START)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_folder_without_read_permission_is_reported_not_fatal(tmp_path, fake_embedder):
    root = tmp_path / "vault"
    (root / "locked").mkdir(parents=True)
    (root / "ok.md").write_text("fine\n", encoding="utf-8")
    (root / "locked/n.md").write_text("hidden\n", encoding="utf-8")
    (root / "locked").chmod(0)
    try:
        if os.access(root / "locked", os.R_OK):
            pytest.skip("running as a user who can read anything (root)")
        result = run("index", root, "--embedder", "fake")
    finally:
        (root / "locked").chmod(stat.S_IRWXU)
    assert result.exit_code == 0
    assert "locked" in result.stderr
