"""Write-back on real files: byte preservation, no-op writes, conflicts, atomicity, safety."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from lenslink import writeback
from lenslink.block import END, START, render_block
from lenslink.errors import BlockError, NoteError, UnsafePathError, WriteConflict
from lenslink.writeback import (
    LinkStyle,
    apply,
    count_names,
    plan_write,
    safe_note_path,
    write_block,
)

BLOCK = render_block([("topic", ["[[Alpha]]", "[[Beta]]"])])
OTHER = render_block([("people", ["[[Gamma]]"])])
BLOCK_BYTES = BLOCK.encode()


def _note(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(writeback.TEMP_SUFFIX)]


@pytest.mark.parametrize(
    "rel, original, expected_tail",
    [
        ("plain.md", b"hello\n", b"\n" + BLOCK_BYTES),
        ("bom.md", b"\xef\xbb\xbfhello\n", b"\n" + BLOCK_BYTES),
        ("crlf.md", b"a  \r\nb\t\r\n", b"\r\n" + BLOCK_BYTES.replace(b"\n", b"\r\n")),
        ("no-final-newline.md", b"last line ", b"\n\n" + BLOCK_BYTES[:-1]),
        (
            "front.md",
            b"---\ntags: [a, b]   # keep me\ntitle: 'x'\n---\nbody\n",
            b"\n" + BLOCK_BYTES,
        ),
        ("dossier/café ünï 日本.md", "Grüße 🌍\n".encode(), b"\n" + BLOCK_BYTES),
        ("empty.md", b"", BLOCK_BYTES),
    ],
)
def test_append_and_remove_preserve_every_byte(tmp_path, rel, original, expected_tail):
    path = _note(tmp_path, rel, original)
    assert write_block(tmp_path, rel, BLOCK).status == "written"
    assert path.read_bytes() == original + expected_tail
    assert write_block(tmp_path, rel, "").status == "written"
    assert path.read_bytes() == original


def test_second_write_is_a_noop(tmp_path, monkeypatch):
    path = _note(tmp_path, "n.md", b"text\n")
    first = write_block(tmp_path, "n.md", BLOCK)
    assert first.status == "written"
    assert first.sha256 == writeback._sha256(path.read_bytes())
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    monkeypatch.setattr(writeback, "apply", lambda plan: pytest.fail("apply called"))
    assert plan_write(tmp_path, "n.md", BLOCK) is None
    assert write_block(tmp_path, "n.md", BLOCK) == writeback.WriteResult("n.md", "unchanged")
    assert path.stat().st_mtime_ns == 1_000_000_000


def test_replacing_a_block_keeps_text_before_and_after(tmp_path):
    before = "# Title\r\n\r\nintro with trailing space \r\n".encode()
    after = "\r\n## Notes\r\nmine, not yours ✍️".encode()
    path = _note(tmp_path, "n.md", before + BLOCK_BYTES.replace(b"\n", b"\r\n") + after)
    write_block(tmp_path, "n.md", OTHER)
    assert path.read_bytes() == before + OTHER.encode().replace(b"\n", b"\r\n") + after


def test_markers_inside_code_fences_are_left_alone(tmp_path):
    original = f"Example:\n\n```markdown\n{START}\n- [[x]]\n{END}\n```\n".encode()
    path = _note(tmp_path, "n.md", original)
    write_block(tmp_path, "n.md", BLOCK)
    assert path.read_bytes() == original + b"\n" + BLOCK_BYTES


@pytest.mark.parametrize(
    "text, message",
    [
        (f"a\n{BLOCK}b\n{BLOCK}", "two lenslink blocks"),
        (f"a\n{START}\n- [[x]]\n", "start marker without end"),
        (f"a\n- [[x]]\n{END}\n", "end marker without start"),
    ],
)
def test_damaged_blocks_refuse_and_leave_the_file(tmp_path, text, message):
    path = _note(tmp_path, "n.md", text.encode())
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    for block in (OTHER, ""):
        with pytest.raises(BlockError, match=f"n.md: {message}"):
            write_block(tmp_path, "n.md", block)
    assert path.read_bytes() == text.encode()
    assert path.stat().st_mtime_ns == 1_000_000_000


def test_invalid_utf8_is_never_rewritten(tmp_path):
    path = _note(tmp_path, "n.md", b"caf\xe9\n")
    with pytest.raises(NoteError, match="not valid UTF-8"):
        write_block(tmp_path, "n.md", BLOCK)
    assert path.read_bytes() == b"caf\xe9\n"


def test_missing_note_is_a_note_error(tmp_path):
    with pytest.raises(NoteError, match="not found"):
        plan_write(tmp_path, "gone.md", BLOCK)


@pytest.mark.parametrize("block", [BLOCK, ""], ids=["write", "remove"])
def test_conflict_keeps_the_other_writers_content(tmp_path, block):
    path = _note(tmp_path, "n.md", b"v1\n\n" + OTHER.encode())
    plan = plan_write(tmp_path, "n.md", block)
    edited = b"v2 from the editor\n\n" + OTHER.encode()
    path.write_bytes(edited)
    with pytest.raises(WriteConflict, match="changed since it was read"):
        apply(plan)
    assert path.read_bytes() == edited
    assert _leftovers(tmp_path) == []


def test_conflict_when_the_note_vanished(tmp_path):
    path = _note(tmp_path, "n.md", b"v1\n")
    plan = plan_write(tmp_path, "n.md", BLOCK)
    path.unlink()
    with pytest.raises(WriteConflict, match="vanished"):
        apply(plan)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_permissions_and_leaves_no_temp_file(tmp_path):
    path = _note(tmp_path, "n.md", b"text\n")
    path.chmod(0o640)
    write_block(tmp_path, "n.md", BLOCK)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.md"]


@pytest.mark.parametrize("swap", ["exchange", "replace"])
def test_failed_replace_cleans_up_the_temp_file(tmp_path, monkeypatch, swap):
    path = _note(tmp_path, "n.md", b"text\n")
    seen: list[str] = []

    def failing(src, dst, *rest):
        seen.append(os.path.basename(src))
        raise PermissionError(13, "Permission denied")

    if swap == "exchange":
        monkeypatch.setattr(writeback, "_exchange", failing)
    else:  # where there is no atomic exchange
        monkeypatch.setattr(writeback, "_exchange", lambda a, b: False)
        monkeypatch.setattr(writeback.os, "replace", failing)
    with pytest.raises(NoteError, match="cannot write"):
        write_block(tmp_path, "n.md", BLOCK)
    assert seen and seen[0].startswith(".n.md.") and seen[0].endswith(".lenslink.tmp")
    assert path.read_bytes() == b"text\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.md"]


def test_symlinked_note_inside_the_vault_writes_the_target(tmp_path):
    target = _note(tmp_path, "real/note.md", b"real\n")
    link = tmp_path / "alias.md"
    link.symlink_to(target)
    write_block(tmp_path, "alias.md", BLOCK)
    assert link.is_symlink()
    assert target.read_bytes() == b"real\n\n" + BLOCK_BYTES


@pytest.mark.parametrize(
    "rel, reason",
    [
        ("/etc/passwd.md", "relative to the vault"),
        ("C:\\notes\\x.md", "relative to the vault"),
        ("../outside.md", "leaves the vault"),
        ("a/../../outside.md", "leaves the vault"),
        ("a\\..\\..\\outside.md", "leaves the vault"),
        ("notes/image.png", "to a .md note"),
        ("notes/readme", "to a .md note"),
        (".obsidian/workspace.md", "dot folders"),
        (".trash/old.md", "dot folders"),
        ("a//b.md", "dot folders"),
        ("", "empty"),
    ],
)
def test_unsafe_paths_are_refused(tmp_path, rel, reason):
    with pytest.raises(UnsafePathError, match=reason):
        safe_note_path(tmp_path, rel)


def test_symlinks_leaving_the_vault_are_refused(tmp_path):
    vault, outside = tmp_path / "vault", tmp_path / "outside"
    secret = _note(outside, "secret.md", b"secret\n")
    vault.mkdir()
    (vault / "link.md").symlink_to(secret)
    (vault / "dir").symlink_to(outside, target_is_directory=True)
    (vault / "conf.md").symlink_to(_note(vault, ".obsidian/x.md", b""))
    for rel in ("link.md", "dir/secret.md", "conf.md"):
        with pytest.raises(UnsafePathError):
            write_block(vault, rel, BLOCK)
    assert secret.read_bytes() == b"secret\n"


def test_dry_run_returns_a_diff_and_writes_nothing(tmp_path):
    path = _note(tmp_path, "n.md", b"text")
    result = write_block(tmp_path, "n.md", BLOCK, dry_run=True)
    assert result.status == "diff"
    assert result.diff.startswith("--- a/n.md\n+++ b/n.md\n")
    assert "-text\n\\ No newline at end of file\n+text\n" in result.diff
    assert f"+{START}\n" in result.diff
    assert path.read_bytes() == b"text"
    assert write_block(tmp_path, "n.md", "", dry_run=True).status == "unchanged"


# Link style ----------------------------------------------------------------------------

PATHS = ["Inbox/Idea one.md", "Projects/Plan.md", "Archive/Plan.md", "Solo.md"]


def _style(tmp_path: Path, settings: object | None) -> LinkStyle:
    if settings is not None:
        (tmp_path / ".obsidian").mkdir()
        text = settings if isinstance(settings, str) else json.dumps(settings)
        (tmp_path / ".obsidian" / "app.json").write_text(text)
    return LinkStyle.from_vault(tmp_path)


@pytest.mark.parametrize(
    "settings", [None, "{not json", "[]", {"useMarkdownLinks": "yes", "newLinkFormat": 3}]
)
def test_link_style_defaults(tmp_path, settings):
    assert _style(tmp_path, settings) == LinkStyle(False, "shortest")


def test_link_style_reads_app_json(tmp_path):
    style = _style(tmp_path, {"useMarkdownLinks": True, "newLinkFormat": "relative", "x": 1})
    assert style == LinkStyle(True, "relative")


def test_wikilinks_shortest_fall_back_to_full_path_when_ambiguous():
    style, names = LinkStyle(), count_names(PATHS)
    assert style.format_link("Inbox/Idea one.md", "Solo.md", names) == "[[Idea one]]"
    assert style.format_link("Projects/Plan.md", "Solo.md", names) == "[[Projects/Plan]]"
    assert style.format_link("Solo.md", "Projects/Plan.md", lambda stem: True) == "[[Solo]]"


def test_count_names_counts_stems_as_paths_do():
    from collections import Counter
    from pathlib import PurePosixPath
    paths = ["a.md", "A.MD", "x/a.md", "b.c.md", "x/b.c.Md", ".md", "x/.md", "d.md.md", "Ä.md",
             "ä.md", "e", "x/y.txt", "f.", "g..md"]
    assert count_names(paths) == Counter(PurePosixPath(p).stem.lower() for p in paths)


def test_wikilinks_relative_and_absolute():
    names = count_names(PATHS)
    relative, absolute = LinkStyle(False, "relative"), LinkStyle(False, "absolute")
    assert relative.format_link("Inbox/Idea one.md", "Projects/Plan.md", names) == (
        "[[../Inbox/Idea one]]"
    )
    assert relative.format_link("Projects/Plan.md", "Projects/Other.md", names) == "[[Plan]]"
    assert absolute.format_link("Inbox/Idea one.md", "Solo.md", names) == "[[Inbox/Idea one]]"


def test_markdown_links_encode_spaces():
    names = count_names(PATHS)
    shortest, relative = LinkStyle(True, "shortest"), LinkStyle(True, "relative")
    assert shortest.format_link("Inbox/Idea one.md", "Solo.md", names) == (
        "[Idea one](Idea%20one.md)"
    )
    assert shortest.format_link("Archive/Plan.md", "Solo.md", names) == (
        "[Plan](Archive/Plan.md)"
    )
    assert relative.format_link("Inbox/Idea one.md", "Projects/Plan.md", names) == (
        "[Idea one](../Inbox/Idea%20one.md)"
    )


def test_a_save_in_the_last_instant_is_put_back_not_overwritten(tmp_path, monkeypatch):
    """The note is saved by someone between lenslink's last check and its swap: the swap
    displaces their version, which is noticed and put back."""
    from lenslink import writeback
    if writeback._renameat2 is None:
        pytest.skip("no renameat2 here")
    note = tmp_path / "n.md"
    note.write_text("mine\n", encoding="utf-8")
    real = writeback._exchange
    calls = []

    def racing(a, b):
        if not calls:
            Path(b).write_text("mine\nand a line typed just now\n", encoding="utf-8")
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(writeback, "_exchange", racing)
    with pytest.raises(WriteConflict, match="changed while it was written"):
        write_block(tmp_path, "n.md", BLOCK)
    assert note.read_text(encoding="utf-8") == "mine\nand a line typed just now\n"
    assert len(calls) == 2  # swapped in, then theirs swapped back
    assert [p.name for p in tmp_path.iterdir()] == ["n.md"]


def test_temp_files_of_a_killed_write_are_removed_by_the_next_full_sync(tiny_vault, tmp_path,
                                                                        fake_embedder):
    from lenslink.vault import Vault
    root = tiny_vault({"a.md": "alpha\n", "sub/b.md": "beta\n"})
    (root / ".a.md.x1y2.lenslink.tmp").write_text("half")
    (root / "sub/.b.md.zz.lenslink.tmp").write_text("half")
    (root / ".keep.md.tmp").write_text("not ours")
    (root / f".a.md.{os.getppid()}-now.lenslink.tmp").write_text("a running process's write")
    (root / ".a.md.999999999-dead.lenslink.tmp").write_text("a killed process's")
    old = time.time() - 120
    (root / f".a.md.{os.getppid()}-old.lenslink.tmp").write_text("a running one's, long ago")
    os.utime(root / f".a.md.{os.getppid()}-old.lenslink.tmp", (old, old))
    with Vault(root, db=tmp_path / "i.db", embedder="fake") as vault:
        report = vault.index()
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == \
        [f".a.md.{os.getppid()}-now.lenslink.tmp", ".keep.md.tmp", "a.md", "b.md"]
    assert sum("temp file left by an interrupted write" in m for _, m in report.problems) == 4


def test_disk_full_while_writing_leaves_the_note_and_no_temp_file(tmp_path, monkeypatch):
    import errno
    path = _note(tmp_path, "n.md", b"text\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writeback.os, "fsync", no_space)
    with pytest.raises(NoteError, match="No space left on device"):
        write_block(tmp_path, "n.md", BLOCK)
    assert path.read_bytes() == b"text\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.md"]
