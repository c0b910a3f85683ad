"""Incremental snapshots: `Vault.refresh(changed)` updates the ranking from the changed
notes only (what the daemon does after an edit) and must agree with a full load.

Real indexes with the bag-of-words fake embedder: "similar" means "shares words".
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenslink import rank, snapshot
from lenslink import vault as vault_mod
from lenslink.lexical import Mentions, TfIdf
from lenslink.rank import VaultIndex
from lenslink.vault import Vault
from test_rank import CLUSTERS, cluster_notes, paths


@pytest.fixture
def opened(tiny_vault, tmp_path, fake_embedder):
    """A vault of topic clusters, indexed and loaded; `.root`, `.sync(paths)`."""
    root = tiny_vault(cluster_notes(linked=False))
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        vault.refresh()
        yield vault


def sync(vault: Vault, *rels: str) -> list[str]:
    """Index these notes as the daemon does; the notes whose snapshot rows changed."""
    report = vault.index(paths=list(rels))
    return sorted(set(report.changed) | set(report.removed) | set(report.embedded_paths))


def full(vault: Vault) -> VaultIndex:
    return VaultIndex.load(vault.store, vault.config, vault.store.get_meta("embedder"))


def clusters(index: VaultIndex, note: str, top: int = 3) -> set[str]:
    return {p.split("/")[0] for p in paths(index.related(note, "topic", top))}


def test_an_edit_updates_the_snapshot_without_a_full_load(opened):
    note = "garden/garden 0.md"
    (opened.root / note).write_text(CLUSTERS["baking"] + " today", encoding="utf-8")
    before = opened.ranking()
    changed = sync(opened, note)
    assert changed == [note]
    after = opened.refresh(changed)
    assert after is not before and after.patched == 1  # updated, not loaded
    assert clusters(after, note) == {"baking"}
    # every note ranks as after a full load (same clusters in each top 3)
    reference = full(opened)
    for other in reference.lens_notes("topic"):
        assert clusters(after, other) == clusters(reference, other), other
    # the passage shown for it is from its new text
    shown = [r.passage for r in after.related("baking/baking 1.md", "topic", 100) if r.path == note]
    assert len(shown) == 1 and "sourdough" in shown[0] and "tomato" not in shown[0]


def test_added_and_deleted_notes_appear_and_vanish_everywhere(opened):
    root = opened.root
    (root / "baking/baking new.md").write_text((root / "baking/baking 0.md").read_text())
    (root / "money/money 0.md").unlink()
    before = opened.ranking()
    changed = sync(opened, "baking/baking new.md", "money/money 0.md")
    assert changed == ["baking/baking new.md", "money/money 0.md"]
    after = opened.refresh(changed)
    assert after.patched == 2
    assert "money/money 0.md" not in after.row
    assert "money/money 0.md" not in after.lens_notes("topic")
    for note in after.lens_notes("topic"):
        assert "money/money 0.md" not in paths(after.related(note, "topic", 100))
    # an identical copy is the best match both ways
    assert paths(after.related("baking/baking 0.md", "topic", 1)) == ["baking/baking new.md"]
    assert paths(after.related("baking/baking new.md", "topic", 1)) == ["baking/baking 0.md"]
    assert len(after.related("baking/baking new.md", "topic", 100, min_score=0.0)) == 29
    # the previous snapshot, still in use by a reader, is as it was
    assert "baking/baking new.md" not in before.row
    assert "money/money 0.md" in paths(before.related("money/money 1.md", "topic", 100))


def test_a_renamed_note_keeps_its_neighbours_and_its_links_follow(tiny_vault, tmp_path, fake_embedder):
    notes = cluster_notes(linked=True)
    root = tiny_vault(notes)
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        vault.refresh()
        (root / "travel/travel 1.md").rename(root / "travel/trip.md")
        changed = sync(vault, "travel/travel 1.md", "travel/trip.md")
        new = vault.refresh(changed)
        assert "travel/travel 1.md" not in new.row and "travel/trip.md" in new.row
        assert clusters(new, "travel/trip.md", 5) == {"travel"}
        assert set(paths(new.related("travel/trip.md", "topic", 5))) == \
            set(paths(full(vault).related("travel/trip.md", "topic", 5)))
        assert new.links == full(vault).links  # [[travel 1]] no longer resolves
        assert "travel/travel 1.md" not in new.links.get("travel/travel 0.md", set())


def test_an_update_keeps_the_sketch_of_every_note(tiny_vault, tmp_path, fake_embedder, monkeypatch):
    """Edited, added and deleted notes get their sketch rows from the last full load's
    axes, as the first pass of a large lens needs (rank.SHORTLIST)."""
    monkeypatch.setattr(rank, "SKETCH_MIN_NOTES", 1)
    monkeypatch.setattr(rank, "SKETCH_DIM", 8)
    monkeypatch.setattr(rank, "SHORTLIST", 10)
    root = tiny_vault(cluster_notes(per_cluster=8, linked=False))
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        before = vault.refresh()
        (root / "garden/garden 0.md").write_text(CLUSTERS["travel"], encoding="utf-8")
        (root / "garden/new.md").write_text(CLUSTERS["money"] + " today", encoding="utf-8")
        (root / "money/money 1.md").unlink()
        after = vault.refresh(sync(vault, "garden/garden 0.md", "garden/new.md", "money/money 1.md"))
        assert after.patched == 3
        view = after.views["topic"]
        assert view.basis is before.views["topic"].basis
        every = np.arange(len(view.rows))
        np.testing.assert_allclose(view.sketch, view.centred_rows(every) @ view.basis, atol=1e-5)
        gone = view.rows.tolist().index(before.row["money/money 1.md"])
        assert not view.sketch[gone].any()
        assert clusters(after, "garden/new.md") == {"money"}
        assert clusters(after, "garden/garden 0.md") == {"travel"}


def test_a_long_lived_process_builds_a_large_snapshot_in_a_child(tiny_vault, tmp_path, fake_embedder,
                                                                 monkeypatch):
    """The daemon's vault builds the snapshot in a child process and maps the file: the
    build's memory leaves with the child. (The child process does not see this test's
    monkeypatching: the build in this process is made to fail, the child's is not.)"""
    monkeypatch.setattr(snapshot, "APART_MIN_NOTES", 1)
    root = tiny_vault(cluster_notes(linked=False))
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        reference = full(vault)
        vault.build_apart = True

        def not_here(*args, **kwargs):
            raise AssertionError("the snapshot was built in this process")
        monkeypatch.setattr(VaultIndex, "load", not_here)
        index = vault.ranking()
        assert snapshot.path_for(vault.db_path).exists()
        for note in reference.lens_notes("topic"):
            assert paths(index.related(note, "topic", 5)) == paths(reference.related(note, "topic", 5))


def test_a_script_without_a_main_guard_builds_in_a_child_too(tiny_vault, tmp_path, fake_embedder):
    # the child is a fresh interpreter: the calling script's top level does not run again
    root = tiny_vault(cluster_notes(linked=False))
    db = tmp_path / "index.db"
    with Vault(root, db=db, embedder="fake") as vault:
        vault.index()
    script = tmp_path / "user_script.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import fake_embedder\n"
        "from lenslink import snapshot\n"
        "from lenslink.vault import Vault\n"
        "snapshot.APART_MIN_NOTES = 1\n"
        "snapshot.VaultIndex.load = None  # not here\n"
        f"v = Vault({str(root)!r}, db={str(db)!r}, embedder='fake')\n"
        "v.build_apart = True\n"
        "print(len(v.ranking().lens_notes('topic')))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(cluster_notes(linked=False)))
    assert "failed" not in done.stderr and snapshot.path_for(db).exists()


def test_a_build_in_a_child_stops_when_its_stop_event_is_set(tmp_path, monkeypatch):
    # what a daemon asked to stop does: it does not wait minutes for the child, and
    # starts no other one afterwards
    import threading
    import time
    from lenslink.errors import StoreError
    from lenslink.lenses import DEFAULT_LENSES, VaultConfig
    monkeypatch.setattr(snapshot, "_CHILD", "import sys, time; sys.stdin.read(); time.sleep(60)")
    stop, outcome = threading.Event(), []

    def build():
        try:
            outcome.append(snapshot.build_apart(tmp_path / "index.db", VaultConfig(DEFAULT_LENSES),
                                                "fake", "k", stop))
        except StoreError as exc:
            outcome.append(exc)
    thread = threading.Thread(target=build)
    started = time.monotonic()
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()  # the child sleeps
    stop.set()
    thread.join(20)
    assert not thread.is_alive() and time.monotonic() - started < 15
    assert len(outcome) == 1 and isinstance(outcome[0], StoreError) and "interrupted" in str(outcome[0])
    with pytest.raises(StoreError, match="stopping"):
        snapshot.build_apart(tmp_path / "index.db", VaultConfig(DEFAULT_LENSES), "fake", "k", stop)


def test_a_failed_child_build_says_so(tmp_path, caplog):
    from lenslink.lenses import DEFAULT_LENSES, VaultConfig
    (tmp_path / "a file").write_text("not a folder")
    assert not snapshot.build_apart(tmp_path / "a file" / "index.db", VaultConfig(DEFAULT_LENSES), "fake", "key")
    assert "child process failed" in caplog.text


def test_new_links_titles_and_aliases_are_seen_after_an_update(opened):
    note = "server/server 0.md"
    text = (opened.root / note).read_text()
    (opened.root / note).write_text("---\naliases: [Backup Plan]\n---\n" + text +
                                    "\nSee [[garden 3]].\n", encoding="utf-8")
    (opened.root / "travel/travel 2.md").write_text(CLUSTERS["travel"] + " my backup plan")
    after = opened.refresh(sync(opened, note, "travel/travel 2.md"))
    assert after.links[note] == ("garden/garden 3.md",)
    assert after.links == full(opened).links
    row = after.row["travel/travel 2.md"]
    assert after.row[note] in after.mentioned_rows(row)
    assert [r.mentioned for r in after.related("travel/travel 2.md", "topic", 100)
            if r.path == note] == [True]


def test_a_snapshot_is_updated_for_fewer_changes_in_a_small_vault():
    """Its idf, centring and calibration go stale as notes change: a small vault (quick
    to load in full) is loaded in full after a fifth of its notes changed."""
    assert [vault_mod.patch_limit(n) for n in (5, 100, 1_000, 10_000, 100_000)] == \
        [10, 20, 200, 500, 5_000]


def test_many_changes_make_a_full_load(opened, monkeypatch):
    monkeypatch.setattr(vault_mod, "PATCH_MIN", 2)
    monkeypatch.setattr(vault_mod, "PATCH_SHARE", 0.0)
    monkeypatch.setattr(vault_mod, "PATCH_FLOOR", 2)
    edited = ["garden/garden 1.md", "garden/garden 2.md", "garden/garden 3.md"]
    for note in edited:
        (opened.root / note).write_text(CLUSTERS["money"], encoding="utf-8")
    assert opened.refresh(sync(opened, *edited[:2])).patched == 2
    snapshot = opened.refresh(sync(opened, edited[2]))
    assert snapshot.patched == 0  # 3 > 2: loaded in full
    assert opened.refresh([]) is snapshot  # nothing changed: the same snapshot


def test_learned_ranker_ranks_a_new_note_after_an_update(tiny_vault, tmp_path, fake_embedder):
    root = tiny_vault(cluster_notes(per_cluster=8, linked=True))
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        report = vault.train()
        assert report["topic"]["trained"], report
        assert vault.ranking().views["topic"].model is not None  # loaded with the ranker
        text = (root / "garden/garden 2.md").read_text().split("\n\nSee")[0]
        (root / "garden/garden new.md").write_text(text + "\n", encoding="utf-8")
        after = vault.refresh(sync(vault, "garden/garden new.md"))
        assert after.patched == 1 and after.views["topic"].model is not None
        found = after.related("garden/garden new.md", "topic", 5, min_score=0.0)
        assert found and {p.split("/")[0] for p in paths(found)} == {"garden"}
        assert found[0].score_kind == "probability"
        assert "garden/garden new.md" in paths(after.related("garden/garden 2.md", "topic", 5, min_score=0.0))


def test_training_leaves_the_snapshot_and_its_rankers_load_beside_it(tiny_vault, tmp_path, fake_embedder):
    """Rankers are stored apart from the snapshot: training (or dropping a ranker) does
    not make a 100,000-note snapshot to build again."""
    root = tiny_vault(cluster_notes(per_cluster=8, linked=True))
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        assert vault.refresh().views["topic"].model is None
        where = snapshot.path_for(vault.db_path)
        saved = where.stat().st_mtime_ns, where.stat().st_ino
        assert vault.train()["topic"]["trained"]
        trained = vault.ranking()
        assert trained.views["topic"].model is not None
        assert trained.related("garden/garden 1.md", "topic", 3)[0].score_kind == "probability"
        vault.store.delete_models()
        untrained = vault.refresh()
        assert untrained.views["topic"].model is None
        assert paths(untrained.related("garden/garden 1.md", "topic", 3)) == \
            paths(full(vault).related("garden/garden 1.md", "topic", 3))
        assert (where.stat().st_mtime_ns, where.stat().st_ino) == saved  # never written again


def test_an_edit_drops_the_old_text_vector_but_keeps_shared_ones(tiny_vault, tmp_path, fake_embedder):
    root = tiny_vault({"a.md": "alpha beta gamma", "b.md": "alpha beta gamma", "c.md": "delta"},
                      config='[lenses.topic]\ntemplate = "{body}"\n')
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        assert vault.store.vector_count() == 2
        (root / "a.md").write_text("epsilon zeta")
        (root / "c.md").write_text("eta theta")
        vault.index(paths=["a.md", "c.md"])
        # "delta" is unused now and dropped; "alpha beta gamma" is still b's
        assert vault.store.vector_count() == 3


# ---------------------------------------------------------------- the parts

def test_tfidf_with_replaced_and_added_documents_scores_like_brute_force():
    texts = ["apple banana cherry", "banana cherry date", "cherry date elder apple",
             "fig grape apple", "grape fig fig banana"]
    base = TfIdf(texts)
    updated = base.with_docs({1: "apple apple fig", 5: "date elder fig", 2: ""})
    docs = [texts[0], "apple apple fig", "", texts[3], texts[4], "date elder fig"]
    for query in ["apple fig", "banana cherry date", "grape", "unknown words"]:
        q_terms, q_weights = updated.vector(query)
        expected = []
        for doc in docs:
            d_terms, d_weights = updated.vector(doc)
            common = dict(zip(d_terms.tolist(), d_weights.tolist()))
            expected.append(sum(w * common.get(t, 0.0) for t, w in zip(q_terms.tolist(), q_weights.tolist())))
        assert np.allclose(updated.similarities_to(query), expected, atol=1e-6), query
        # the original is untouched
        assert np.array_equal(base.similarities_to(query), TfIdf(texts).similarities_to(query))
    assert base.n == 5 and updated.n == 6


def test_mentions_with_new_names_forget_the_old_ones():
    base = Mentions([["Garden Irrigation"], ["Python", "py lang"], ["Tokyo"]])
    new = base.with_names({1: ["Rust"], 2: [], 3: ["Kyoto Trip"]})
    text = "garden irrigation with python and rust on a kyoto trip to tokyo"
    assert base.mentioned(text) == {0, 1, 2}
    assert new.mentioned(text) == {0, 1, 3}
    assert new.mentioned("py lang") == set() and base.mentioned("py lang") == {1}


# ---------------------------------------------------------------- the snapshot on disk

def loads_counted(monkeypatch) -> list[int]:
    calls = []
    real = VaultIndex.load.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(VaultIndex, "load", classmethod(counting))
    return calls


def test_an_unchanged_vault_loads_its_snapshot_from_disk(tiny_vault, tmp_path, fake_embedder,
                                                        monkeypatch):
    root = tiny_vault(cluster_notes(linked=True), config="[lenses.topic]\ntop_k = 5\n")
    db = tmp_path / "index.db"
    with Vault(root, db=db, embedder="fake") as vault:
        vault.index()
        first = {n: paths(vault.related(n, "topic")) for n in vault.ranking().lens_notes("topic")}
    assert snapshot_path(db).exists()
    builds = loads_counted(monkeypatch)
    with Vault(root, db=db, embedder="fake") as vault:
        again = {n: paths(vault.related(n, "topic")) for n in vault.ranking().lens_notes("topic")}
    assert builds == [] and again == first
    # top_k is not part of the snapshot: a new value applies at once
    (root / ".lenslink.toml").write_text("[lenses.topic]\ntop_k = 2\n", encoding="utf-8")
    with Vault(root, db=db, embedder="fake") as vault:
        assert len(vault.related("garden/garden 0.md", "topic")) == 2
    assert builds == []


def indexed_and_saved(tiny_vault, tmp_path, linked: bool) -> tuple:
    """(vault, database) indexed, its snapshot built and saved."""
    root = tiny_vault(cluster_notes(linked=linked))
    db = tmp_path / "index.db"
    with Vault(root, db=db, embedder="fake") as vault:
        vault.index()
        vault.refresh()
    return root, db


def test_a_changed_vault_or_a_damaged_file_builds_the_snapshot_again(tiny_vault, tmp_path,
                                                                    fake_embedder, monkeypatch):
    root, db = indexed_and_saved(tiny_vault, tmp_path, linked=False)
    builds = loads_counted(monkeypatch)
    monkeypatch.setattr(vault_mod, "PATCH_MIN", 0)  # too many changes to bring it up to date
    monkeypatch.setattr(vault_mod, "PATCH_SHARE", 0)
    monkeypatch.setattr(vault_mod, "PATCH_FLOOR", 0)
    (root / "garden/garden 0.md").write_text(CLUSTERS["baking"], encoding="utf-8")
    with Vault(root, db=db, embedder="fake") as vault:
        vault.index()
        assert clusters(vault.ranking(), "garden/garden 0.md") == {"baking"}
    assert builds == [1]
    data = snapshot_path(db).read_bytes()
    snapshot_path(db).write_bytes(data[:len(data) // 2])  # truncated
    with Vault(root, db=db, embedder="fake") as vault:
        assert clusters(vault.ranking(), "garden/garden 0.md") == {"baking"}
    assert builds == [1, 1]
    assert snapshot_path(db).read_bytes() == data  # written again, whole


def test_a_restart_after_a_few_edits_brings_the_saved_snapshot_up_to_date(tiny_vault, tmp_path,
                                                                          fake_embedder, monkeypatch):
    root, db = indexed_and_saved(tiny_vault, tmp_path, linked=True)
    first = snapshot_path(db).read_bytes()
    builds = loads_counted(monkeypatch)
    # edited, added and deleted while no daemon ran
    (root / "garden/garden 0.md").write_text(CLUSTERS["baking"], encoding="utf-8")
    (root / "travel/new trip.md").write_text(CLUSTERS["travel"] + " [[travel 1]]", encoding="utf-8")
    (root / "server/server 2.md").unlink()
    with Vault(root, db=db, embedder="fake") as vault:
        vault.index()
        index = vault.ranking()
        assert builds == [] and index.mapped is not None  # the saved file, updated
        assert clusters(index, "garden/garden 0.md") == {"baking"}
        assert clusters(index, "travel/new trip.md") == {"travel"}
        assert "server/server 2.md" not in index.row
        assert index.links["travel/new trip.md"] == ("travel/travel 1.md",)
        for note in index.lens_notes("topic"):  # ranks as the updates of a running daemon do
            assert "server/server 2.md" not in paths(index.related(note, "topic", 5))
        key = snapshot.state_key(vault.store, vault.config, vault.store.get_meta("embedder"))
        expected = {n: paths(index.related(n, "topic", 5)) for n in index.lens_notes("topic")}
    # saved as it was brought up to date: the next start loads it as it is, same rankings
    assert snapshot_path(db).read_bytes() != first
    with Vault(root, db=db, embedder="fake") as vault:
        again = snapshot.load(snapshot_path(db), key, vault.config)
        assert again is not None and "server/server 2.md" not in again.row
        assert {n: paths(vault.related(n, "topic", 5)) for n in again.lens_notes("topic")} == expected
    assert builds == []
    # a note stored again while a vector is missing: it is built again instead
    conn = sqlite3.connect(str(db))
    conn.execute("UPDATE meta SET value='' WHERE key='embedded_all'")
    conn.execute("UPDATE notes SET indexed_at=indexed_at+1 WHERE path='garden/garden 1.md'")
    conn.commit()
    conn.close()
    with Vault(root, db=db, embedder="fake") as vault:
        vault.ranking()
    assert builds == [1]


@pytest.mark.parametrize("change", ["deleted", "renamed", "deleted and edited"])
def test_write_all_after_a_restart_writes_only_the_notes_left(tiny_vault, tmp_path, fake_embedder,
                                                              change):
    # a note deleted (or renamed) while no daemon ran leaves its row in the snapshot
    # brought up to date: `write` (every note) must not list it
    root, db = indexed_and_saved(tiny_vault, tmp_path, linked=True)
    if change == "renamed":
        (root / "server/server 2.md").rename(root / "server/host.md")
    else:
        (root / "server/server 2.md").unlink()
    if change == "deleted and edited":
        (root / "garden/garden 0.md").write_text(CLUSTERS["baking"], encoding="utf-8")
    for _ in range(2):  # brought up to date and saved, then loaded as saved
        with Vault(root, db=db, embedder="fake") as vault:
            vault.index()
            outcomes = vault.write(dry_run=True)
            left = set(vault.store.note_paths())
            assert vault.ranking().patched  # brought up to date, not loaded in full
        assert {o.status for o in outcomes} == {"diff"}
        assert sorted(o.path for o in outcomes) == sorted(left)


def test_status_and_the_lens_map_after_a_restart_leave_a_deleted_note_out(tiny_vault, tmp_path,
                                                                           fake_embedder):
    from lenslink import plot

    root, db = indexed_and_saved(tiny_vault, tmp_path, linked=True)
    (root / "server/server 2.md").unlink()
    with Vault(root, db=db, embedder="fake") as vault:
        vault.index()
        assert vault.ranking().patched  # brought up to date: the note's row is still there
        lens = next(l for l in vault.status()["lenses"] if l["name"] == "topic")
        drawn = plot.lens_map(vault.ranking(), "topic")
        left = sorted(vault.store.note_paths())
    assert lens["notes"] == len(left)
    assert sorted(drawn.paths) == left and len(drawn.xy) == len(left)


def test_a_rebuild_removes_the_saved_snapshot(tiny_vault, tmp_path, fake_embedder, monkeypatch):
    # else the next load would bring the snapshot of before up to date from every note
    # (fewer than PATCH_MIN here), keeping its calibration and the rows of notes deleted
    root, db = indexed_and_saved(tiny_vault, tmp_path, linked=True)
    (root / "server/server 2.md").unlink()
    builds = loads_counted(monkeypatch)
    with Vault(root, db=db, embedder="fake") as vault:
        vault.index(rebuild=True)
        assert not snapshot_path(db).exists()
        index = vault.ranking()
        assert index.patched == 0 and [n.path for n in index.notes] == sorted(vault.store.note_paths())
    assert builds == [1]


def test_blocks_written_back_leave_the_snapshot_valid(tiny_vault, tmp_path, fake_embedder):
    # writing "Related notes" blocks changes the files' bytes but nothing lenslink reads:
    # the saved snapshot's key still matches the store
    root = tiny_vault(cluster_notes(linked=False))
    db = tmp_path / "index.db"
    with Vault(root, db=db, embedder="fake") as vault:
        vault.index()
        vault.refresh()
        assert {o.status for o in vault.write()} == {"written"}
        vault.index()
        key = snapshot.state_key(vault.store, vault.config, vault.store.get_meta("embedder"))
        assert snapshot.load(snapshot_path(db), key, vault.config) is not None
        (root / "garden/garden 1.md").write_text(CLUSTERS["baking"], encoding="utf-8")
        vault.index()
        key = snapshot.state_key(vault.store, vault.config, vault.store.get_meta("embedder"))
        assert snapshot.load(snapshot_path(db), key, vault.config) is None  # an edit does change it


def mapped_kb(path) -> int:
    """Resident kB of this process's mappings of `path` (Linux)."""
    total, current = 0, None
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and not parts[0].endswith(":"):
                current = parts[5] if len(parts) > 5 else None
            elif parts[0] == "Rss:" and current == str(path):
                total += int(parts[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/pagemap").exists(), reason="Linux only")
def test_released_pages_are_mapped_again_and_updated_rows_survive(tiny_vault, tmp_path,
                                                                  fake_embedder):
    root = tiny_vault(cluster_notes(linked=False))
    db = tmp_path / "index.db"
    with Vault(root, db=db, embedder="fake") as vault:
        vault.index()
        vault.refresh()
    with Vault(root, db=db, embedder="fake") as vault:
        index = vault.ranking()
        assert index.mapped is not None  # loaded from the file
        notes = index.lens_notes("topic")
        before = {n: paths(vault.related(n, "topic")) for n in notes}
        view = index.views["topic"]
        assert mapped_kb(snapshot_path(db)) > 0
        assert snapshot.release_pages(index) > 0
        assert mapped_kb(snapshot_path(db)) == 0
        assert {n: paths(vault.related(n, "topic")) for n in notes} == before  # mapped again
        # an update writes the edited note's rows into the mapping (copied on write):
        # releasing keeps them
        (root / "garden/garden 0.md").write_text(CLUSTERS["baking"], encoding="utf-8")
        updated = vault.refresh(sync(vault, "garden/garden 0.md"))
        assert updated.mapped is index.mapped
        after = {n: paths(vault.related(n, "topic")) for n in notes}
        assert clusters(updated, "garden/garden 0.md") == {"baking"}
        view = updated.views["topic"]
        i = view.position[updated.row["garden/garden 0.md"]]
        written = [view.raw[i].tobytes(), view.centring[i].tobytes()]
        assert snapshot.release_pages(updated) > 0
        assert [view.raw[i].tobytes(), view.centring[i].tobytes()] == written
        assert {n: paths(vault.related(n, "topic")) for n in notes} == after
        assert clusters(updated, "garden/garden 0.md") == {"baking"}


def snapshot_path(db):
    from lenslink import snapshot
    return snapshot.path_for(db)


def test_an_update_that_changes_nothing_gives_exactly_the_same_scores(opened):
    """Re-reading a note that did not change must not move a score by one ulp: rankings
    with near-ties would otherwise flip between an updated and a loaded snapshot (two
    computers syncing one vault would then keep rewriting each other's blocks)."""
    full_load = opened.ranking()
    notes = ["garden/garden 0.md", "travel/travel 3.md"]
    updated = full_load.updated(opened.store, opened.store.get_meta("embedder"), notes)
    for name, view in full_load.views.items():
        new = updated.views[name]
        assert np.array_equal(new.raw[:len(view.raw)], view.raw), name
        assert np.array_equal(new.centring[:len(view.centring)], view.centring), name
    for note in full_load.lens_notes("topic"):
        row = full_load.row[note]
        assert np.array_equal(updated.lexical(row), full_load.lexical(row)), note
        assert [(r.path, r.score) for r in updated.related(note, "topic", 10)] == \
            [(r.path, r.score) for r in full_load.related(note, "topic", 10)]


def test_lenses_of_the_same_texts_share_arrays_until_a_note_leaves_one(tiny_vault, tmp_path,
                                                                        fake_embedder):
    """Two lenses embedding the same texts share one copy of the vectors (memory), also
    after updates; when a note then leaves one lens only, each ranks as after a full load."""
    config = ('[lenses.all]\n'
              '[lenses.kept]\nsource = {exclude_tags = ["gone"]}\n'
              'candidates = {exclude_tags = ["gone"]}\n')
    root = tiny_vault(cluster_notes(linked=False), config=config)
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        loaded = vault.refresh()
        assert loaded.views["kept"].raw is loaded.views["all"].raw
        # an edit both lenses see alike: still one copy (at 100,000 notes a copy is 150 MB)
        (root / "money/money 2.md").write_text(CLUSTERS["travel"] + " today", encoding="utf-8")
        edited = vault.refresh(sync(vault, "money/money 2.md"))
        assert edited.patched == 1 and np.shares_memory(edited.views["kept"].raw, edited.views["all"].raw)
        for lens in ("all", "kept"):
            assert paths(edited.related("money/money 2.md", lens, 3)) == \
                paths(full(vault).related("money/money 2.md", lens, 3))
        note = root / "garden/garden 0.md"
        note.write_text("---\ntags: [gone]\n---\n" + note.read_text(encoding="utf-8"), encoding="utf-8")
        after = vault.refresh(sync(vault, "garden/garden 0.md"))
        assert after.patched == 2  # the lenses' chunks of that note differ now: two copies
        assert not np.shares_memory(after.views["kept"].raw, after.views["all"].raw)
        reference = full(vault)
        for lens in ("all", "kept"):
            for source in reference.lens_notes(lens):
                top = {p.split("/")[0] for p in paths(after.related(source, lens, 3))}
                assert top == {p.split("/")[0] for p in paths(reference.related(source, lens, 3))}
        shown = {r.path: r.cosine for r in after.related("garden/garden 1.md", "all", 100)}
        expected = {r.path: r.cosine for r in reference.related("garden/garden 1.md", "all", 100)}
        assert shown["garden/garden 0.md"] == pytest.approx(expected["garden/garden 0.md"], abs=0.05)
        assert shown["garden/garden 0.md"] > 0.2  # its vector is still there for this lens
        assert "garden/garden 0.md" not in paths(after.related("garden/garden 1.md", "kept", 100))


def test_a_note_joins_a_lens_that_was_empty_at_the_full_load(tiny_vault, tmp_path, fake_embedder,
                                                             monkeypatch):
    """The daemon's path for a vault's first project note: the project lens had no notes
    at the full load (arrays without a width); the update must rank as a full load."""
    # every note gets a project text: updated, not loaded in full, as in a larger vault
    monkeypatch.setattr(vault_mod, "PATCH_FLOOR", 200)
    root = tiny_vault(cluster_notes(linked=False))
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        assert vault.refresh().views["project"].raw.shape == (0, 0)
        (root / "projects").mkdir()
        (root / "projects/alpha.md").write_text("---\ntype: project\n---\n" + CLUSTERS["garden"],
                                                encoding="utf-8")
        after = vault.refresh(sync(vault, "projects/alpha.md"))
        assert after.patched
        reference = VaultIndex.load(vault.store, vault.config, vault.store.get_meta("embedder"))
        reference.reader = vault.reader
        for note in ("garden/garden 0.md", "travel/travel 1.md"):
            # (its centring mean stays that of the full load, as documented: the order is
            # the full load's, the numbers need not be)
            got = [r.path for r in after.related(note, "project", min_score=0.0)]
            assert got == ["projects/alpha.md"] == \
                [r.path for r in reference.related(note, "project", min_score=0.0)]


def test_reader_borrows_read_only_connections_and_keeps_working_after_close(tmp_path):
    from lenslink.errors import StoreError
    from lenslink.store import Reader, Store
    Store.open(tmp_path / "index.db").close()
    reader = Reader(tmp_path / "index.db")
    with reader.store() as a, reader.store() as b:
        assert a is not b  # two callers at once: two connections
        assert a.query_texts() == {}
        with pytest.raises(Exception, match="readonly"):
            a.db.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    with reader.store() as c:
        assert c in (a, b)  # given back, reused
    reader.close()
    with reader.store() as d:  # a request still running on an old snapshot
        assert d.query_texts() == {}
    with pytest.raises(Exception):
        d.db.execute("SELECT 1")  # closed when given back after close()
    with pytest.raises(StoreError):
        with Reader(tmp_path / "missing.db").store():
            pass
    assert not (tmp_path / "missing.db").exists()


def test_positions_behave_as_the_dict_they_replace():
    from lenslink.rank import Positions
    rng = np.random.default_rng(0)
    rows = rng.permutation(50)[:30]
    pos, ref = Positions(rows), {int(r): i for i, r in enumerate(rows)}
    for step in range(300):
        row = int(rng.integers(-2, 80))
        action = rng.integers(3)
        if action == 0 and row >= 0:
            pos[row] = ref[row] = int(rng.integers(100))
        elif action == 1 and row in ref:
            del pos[row], ref[row]
        assert (row in pos) == (row in ref) and pos.get(row) == ref.get(row)
        assert len(pos) == len(ref) and sorted(pos) == sorted(ref)
    copy = pos.copy()
    copy[999] = 1
    assert 999 not in pos and dict(pos.items()) == ref
    with pytest.raises(KeyError):
        del pos[-1]
