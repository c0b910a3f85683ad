"""Boilerplate: template lines shared by a folder's notes are left out of what is embedded."""

from __future__ import annotations

import numpy as np

from lenslink import boilerplate
from lenslink.vault import Vault

TEMPLATE = "## Tasks\n- [ ] review inbox\n## Gratitude\n"


def chunk_texts(vault: Vault, path: str) -> list[str]:
    return [t for t, in vault.store.db.execute(
        "SELECT text FROM chunks WHERE path=? AND lens='topic' ORDER BY chunk", [path])]


def lex_text(vault: Vault, path: str) -> str:
    return vault.store.db.execute("SELECT lex_text FROM notes WHERE path=?", [path]).fetchone()[0]


def days(count: int) -> dict[str, str]:
    topics = ["sourdough bread", "garden tomatoes", "server backup", "train to kyoto",
              "budget and taxes", "guitar practice", "reading novels", "running shoes"]
    return {f"daily/2026-11-{d + 1:02d}.md": f"{TEMPLATE}Today: {topics[d % len(topics)]} day{d}.\n"
            for d in range(count)}


def test_a_folder_template_is_not_embedded_but_stays_searchable(tiny_vault, tmp_path, fake_embedder):
    notes = {**days(8), "topics/Tasks.md": "## Tasks\nhow I keep a task list\n"}
    with Vault(tiny_vault(notes), db=tmp_path / "i.db", embedder="fake") as vault:
        vault.index()
        day = chunk_texts(vault, "daily/2026-11-01.md")
        assert all("Gratitude" not in t and "review inbox" not in t for t in day), day
        assert "Today: sourdough bread day0." in day[0]
        assert "Gratitude" in lex_text(vault, "daily/2026-11-01.md")  # lexical keeps it
        assert "## Tasks" in chunk_texts(vault, "topics/Tasks.md")[0]  # other folder: kept
        # every text was embedded once: the first pass's unstripped texts were not
        assert len(fake_embedder.texts) == len(set(fake_embedder.texts)) == 9
        assert vault.index().parsed == 0 and len(fake_embedder.texts) == 9  # stable


def test_few_or_rare_lines_are_not_boilerplate(tiny_vault, tmp_path, fake_embedder):
    notes = days(4)  # under MIN_NOTES notes share the template
    notes.update({f"daily/note{i}.md": f"## Tasks\nunique words {i}\n" for i in range(30)})
    with Vault(tiny_vault(notes), db=tmp_path / "i.db", embedder="fake") as vault:
        vault.index()
        assert "Gratitude" in chunk_texts(vault, "daily/2026-11-01.md")[0]  # in 4 notes only
        assert "## Tasks" not in chunk_texts(vault, "daily/note0.md")[0]    # in 34 of 34


def test_the_set_changes_only_on_full_syncs_and_re_reads_what_it_affects(tiny_vault, tmp_path,
                                                                         fake_embedder):
    root = tiny_vault(days(4))
    with Vault(root, db=tmp_path / "i.db", embedder="fake") as vault:
        vault.index()
        assert "Gratitude" in chunk_texts(vault, "daily/2026-11-01.md")[0]
        (root / "daily/2026-11-05.md").write_text(TEMPLATE + "Today: something new.\n")
        vault.index(paths=["daily/2026-11-05.md"])  # what the daemon does after an edit
        assert "Gratitude" in chunk_texts(vault, "daily/2026-11-01.md")[0]  # unchanged
        report = vault.index()  # a full sync: 5 of 5 notes share it now
        assert "Gratitude" not in chunk_texts(vault, "daily/2026-11-01.md")[0]
        assert sorted(report.changed) == sorted(days(5))


def test_frequent_counts_notes_per_folder():
    keys = lambda *lines: boilerplate.note_keys("\n".join(lines))  # noqa: E731
    pairs = [(f"a/{i}.md", keys("shared line", f"own {i}")) for i in range(10)]
    pairs += [(f"b/{i}.md", keys("shared line", f"own {i}")) for i in range(40)]
    pairs += [(f"b/x{i}.md", keys(f"other {i}")) for i in range(200)]
    found = boilerplate.frequent(pairs)
    assert found["a"] == frozenset(keys("shared line").tolist())
    assert "b" not in found  # 40 of 240 notes: under the share
    assert boilerplate.loads(boilerplate.dumps(found)) == found
    assert boilerplate.strip("x\r\nshared  LINE\r\ny", found["a"]) == "x\r\ny"
    assert np.array_equal(keys("a", "b"), keys("b", "a", "a"))
