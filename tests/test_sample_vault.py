"""The sample vault with the real offline model: the lenses do what the README promises.

Slow (the vault is indexed once per module with all-MiniLM-L6-v2); deselect with
`-m "not model"`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lenslink.block import START, remove_block
from lenslink.vault import Vault

pytestmark = pytest.mark.model

SAMPLE = Path(__file__).resolve().parent.parent / "sample_vault"
DAY = "daily/2026-11-05.md"
OPTED_OUT = "daily/2026-11-08.md"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """(vault folder, database) of a copy of sample_vault indexed with the real model."""
    base = tmp_path_factory.mktemp("sample")
    root = Path(shutil.copytree(SAMPLE, base / "vault"))
    db = base / "index.db"
    with Vault(root, db=db, embedder="minilm") as vault:
        vault.index()
    return root, db


@pytest.fixture(scope="module")
def vault(indexed):
    root, db = indexed
    with Vault(root, db=db) as opened:
        yield opened


def ranked(vault: Vault, note: str, lens: str, top: int = 100) -> list[str]:
    """The lens's order, whatever the scores (`min_score` is tested in test_rank)."""
    return [r.path for r in vault.related(note, lens, top, min_score=0.0)]


def test_daily_lens_finds_the_project_the_day_was_about(vault):
    found = ranked(vault, DAY, "daily")
    assert "projects/Sourdough starter.md" in found[:3]
    assert not any(p.startswith("daily/") for p in found)
    assert not any(p.startswith("people/") for p in found)  # excluded by the sample config


def test_the_lens_matters_topic_lets_days_find_days(vault):
    topic = ranked(vault, DAY, "topic", top=10)
    assert sum(p.startswith("daily/") for p in topic) >= 3
    assert topic[0] == "projects/Sourdough starter.md"


@pytest.mark.parametrize("lens, city, nearest", [
    ("cuisine", "Naples", "Bologna"),
    ("cuisine", "Bangkok", "Chiang Mai"),
    ("climate", "Reykjavik", "Oslo"),
    ("climate", "Oslo", "Reykjavik"),
    ("size", "Tokyo", "Mexico City"),
])
def test_city_lenses(vault, lens, city, nearest):
    found = ranked(vault, f"cities/{city}.md", lens)
    assert found[0] == f"cities/{nearest}.md"
    assert all(p.startswith("cities/") for p in found)


def test_city_lenses_disagree_about_tokyo(vault):
    """The same city is near different cities depending on the sense of similarity."""
    firsts = {lens: ranked(vault, "cities/Tokyo.md", lens, 1)[0]
              for lens in ("cuisine", "climate", "size")}
    assert firsts["size"] == "cities/Mexico City.md"
    assert len(set(firsts.values())) >= 2


def test_essay_example_meaning_beats_shared_words(vault):
    found = ranked(vault, "topics/Python can make you rich.md", "topic")
    assert found.index("topics/Mastering Python can fill your pockets.md") < \
        found.index("topics/Python can make you itch.md")


def test_opted_out_note_is_never_suggested(vault):
    for lens in vault.config.names:
        for source, found in vault.related_all(lens, top=100).items():
            assert source != OPTED_OUT
            assert OPTED_OUT not in [r.path for r in found], (lens, source)


def test_broken_yaml_is_a_status_problem(vault):
    status = vault.status()
    assert list(status["problems"]) == ["topics/Reading notes.md"]
    assert status["problems"]["topics/Reading notes.md"][0].startswith("broken frontmatter")
    assert (status["notes"], status["opted_out"]) == (53, 1)
    assert status["texts"] == status["embedded_texts"]


def test_write_all_touches_only_the_blocks_and_is_idempotent(indexed, tmp_path):
    root, db = indexed
    # a private copy (same mtimes, so the copied index is still current)
    copy = Path(shutil.copytree(root, tmp_path / "vault"))
    copy_db = Path(shutil.copy2(db, tmp_path / "index.db"))
    originals = {p.relative_to(copy).as_posix(): p.read_bytes()
                 for p in copy.rglob("*") if p.is_file()}
    with Vault(copy, db=copy_db) as vault:
        first = {o.path: o.status for o in vault.write()}
    assert first.pop(OPTED_OUT, "skipped") == "skipped"
    assert len(first) == 52
    bare = sorted(p for p, status in first.items() if status != "written")
    assert len(bare) <= 2, first  # notes with nothing above min_score in any lens get no block
    with Vault(copy, db=copy_db) as vault:
        assert all(first[p] == "unchanged" and not any(found for _, found in vault.block_groups(p)[2])
                   for p in bare)
    after = {p.relative_to(copy).as_posix(): p.read_bytes()
             for p in copy.rglob("*") if p.is_file()}
    assert set(after) == set(originals)  # no temp file left, nothing new
    assert after[OPTED_OUT] == originals[OPTED_OUT]
    for rel, data in after.items():
        if rel.endswith(".md") and rel != OPTED_OUT and not rel.startswith("templates/") \
                and rel not in bare:
            assert START.encode() in data, rel
        assert remove_block(data.decode("utf-8")).encode("utf-8") == originals[rel], rel
    with Vault(copy, db=copy_db) as vault:
        second = {o.path: o.status for o in vault.write()}
    assert set(second.values()) <= {"unchanged", "skipped"}
    assert {p.relative_to(copy).as_posix(): p.read_bytes()
            for p in copy.rglob("*") if p.is_file()} == after
