"""`lenslink eval` against the reference scripts in ../shared/eval.

The task (held-out notes, stripped links, gold) must be the one `make_task.py` writes and
the numbers the ones `score.py` prints for the predictions `eval --out` leaves behind, so
lenslink's reported quality can be checked by the reference tools. Runs on a copy of a
real vault (obsidian-help-en, 173 notes) with the fake embedder; skipped when
../shared is not there.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenslink import evaluate
from lenslink.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared"
EVAL = SHARED / "eval"
HELP_VAULT = SHARED / "vaults" / "obsidian-help-en"
SEEDS = (0, 1)
SCORE_LINE = re.compile(r"recall@5 (\S+)  recall@10 (\S+)  mrr@10 (\S+)  ndcg@10 (\S+)  notes (\d+)")

needs_shared = pytest.mark.skipif(not (HELP_VAULT.is_dir() and (EVAL / "score.py").is_file()),
                                  reason="../shared/eval or ../shared/vaults/obsidian-help-en missing")


def script(name: str, *args) -> str:
    """Run one of shared/eval's scripts; its stdout."""
    done = subprocess.run([sys.executable, str(EVAL / name), *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def help_vault(tmp_path_factory):
    if not HELP_VAULT.is_dir():
        pytest.skip(f"{HELP_VAULT} missing")
    return Path(shutil.copytree(HELP_VAULT, tmp_path_factory.mktemp("real") / "obsidian-help-en"))


@pytest.fixture(scope="module")
def eval_db(tmp_path_factory):
    """One index database for every eval run here, so vectors are embedded once."""
    return tmp_path_factory.mktemp("eval-db") / "eval.db"


def run_eval_cli(vault: Path, out: Path, db: Path, tmp_path_factory, *args) -> dict:
    """`lenslink eval VAULT --out OUT --embedder fake --json ...` in-process; its JSON.

    Module fixtures run before the per-test private data folder exists, hence the
    explicit --db and a private LENSLINK_DATA_DIR here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LENSLINK_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        result = CliRunner().invoke(main, ["eval", str(vault), "--out", str(out), "--db", str(db),
                                           "--embedder", "fake", "--json", *map(str, args)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module", params=SEEDS, ids=lambda s: f"seed{s}")
def evaluated(request, help_vault, eval_db, tmp_path_factory):
    """(seed, OUT folder, printed JSON) of `lenslink eval --holdout 0.2 --seed N`."""
    out = tmp_path_factory.mktemp(f"eval-seed{request.param}")
    return request.param, out, run_eval_cli(help_vault, out, eval_db, tmp_path_factory,
                                            "--holdout", "0.2", "--seed", request.param)


# -- the task ---------------------------------------------------------------------------
@needs_shared
@pytest.mark.parametrize("seed", SEEDS)
def test_make_task_writes_the_reference_task(help_vault, tmp_path, seed):
    ours = tmp_path / "ours"
    gold = evaluate.make_task(help_vault, ours, 0.2, seed, drop_text=True)
    printed = script("make_task.py", help_vault, tmp_path / "ref", "--holdout", "0.2",
                     "--seed", seed, "--drop-text")
    ref = tmp_path / "ref"
    assert (ours / "gold.json").read_bytes() == (ref / "gold.json").read_bytes()
    assert json.loads((ref / "gold.json").read_text(encoding="utf-8")) == gold
    assert f"{len(gold)} gold notes" in printed and len(gold) == 31
    mine, theirs = files(ours / "vault"), files(ref / "vault")
    assert sorted(mine) == sorted(theirs) and len(mine) == 173
    assert [p for p in mine if mine[p] != theirs[p]] == []
    # what the reference kept as training signal is exactly the links left in our vault
    train = json.loads((ref / "train.json").read_text(encoding="utf-8"))
    left = evaluate.link_graph(evaluate.read_vault(ours / "vault"))
    assert {src: sorted(dst) for src, dst in left.items() if dst} == train
    assert not set(gold) & set(train)


@needs_shared
def test_make_task_seeds_draw_different_notes(help_vault, tmp_path):
    golds = [evaluate.make_task(help_vault, tmp_path / f"s{seed}", 0.2, seed) for seed in SEEDS]
    assert len(golds[0]) == len(golds[1]) and set(golds[0]) != set(golds[1])


def test_links_in_lenslinks_own_block_are_not_the_authors(tmp_path):
    """A vault lenslink wrote into: its suggestions must not become the gold they are
    scored against."""
    from lenslink.block import END, START
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in "bcde":
        (vault / f"{name}.md").write_text(f"note {name}\n", encoding="utf-8")
    (vault / "a.md").write_text(f"See [[b]] and [[c]].\n\n{START}\n## Related notes\n"
                                f"- [[d]]\n- [[e]]\n{END}\n", encoding="utf-8")
    gold = evaluate.make_task(vault, tmp_path / "task", 0.0, 0)
    assert gold == {"a.md": ["b.md", "c.md"]}
    assert (tmp_path / "task/vault/a.md").read_text(encoding="utf-8") == "See  and .\n"


# -- the numbers ------------------------------------------------------------------------
@needs_shared
def test_eval_numbers_agree_with_score_py(evaluated):
    seed, out, results = evaluated
    assert (results["lens"], results["holdout"], results["seed"], results["notes"]) == \
        ("topic", 0.2, seed, 31)
    assert results["training"]["trained"] is True
    methods = results["methods"]
    assert sorted(methods) == sorted(["lenslink", "fusion", "raw cosine", "centred cosine", "lexical"])
    for method, ours in methods.items():
        pred = out / f"pred_{method.replace(' ', '_')}.json"
        assert sorted(json.loads(pred.read_text(encoding="utf-8"))) == \
            sorted(json.loads((out / "gold.json").read_text(encoding="utf-8")))
        printed = script("score.py", out / "gold.json", pred)
        found = SCORE_LINE.search(printed)
        assert found, printed
        theirs = dict(zip(evaluate.METRICS, map(float, found.groups()[:4])))
        assert int(found.group(5)) == ours["notes"] == 31
        for metric in evaluate.METRICS:
            assert abs(ours[metric] - theirs[metric]) <= 0.0005 + 1e-9, (method, metric, printed)


@needs_shared
def test_eval_task_is_the_reference_task(evaluated, help_vault, tmp_path):
    seed, out, _ = evaluated
    script("make_task.py", help_vault, tmp_path / "ref", "--holdout", "0.2", "--seed", seed,
           "--drop-text")
    assert (out / "gold.json").read_bytes() == (tmp_path / "ref" / "gold.json").read_bytes()
    assert files(out / "vault") == files(tmp_path / "ref" / "vault")


@needs_shared
def test_eval_without_holdout_ranks_every_note_with_two_links(help_vault, eval_db, tmp_path,
                                                                tmp_path_factory):
    results = run_eval_cli(help_vault, tmp_path / "out", eval_db, tmp_path_factory, "--holdout", "0")
    script("make_task.py", help_vault, tmp_path / "ref", "--drop-text")
    gold = json.loads((tmp_path / "ref" / "gold.json").read_text(encoding="utf-8"))
    graph = evaluate.link_graph(evaluate.read_vault(help_vault))
    assert sorted(gold) == sorted(src for src, dst in graph.items() if len(dst) >= 2)
    assert (tmp_path / "out" / "gold.json").read_bytes() == (tmp_path / "ref" / "gold.json").read_bytes()
    assert results["notes"] == len(gold) > 100
    assert results["training"] == {"trained": False}
    # no links are left to learn from, so lenslink's ranking is the fusion's
    assert not any(evaluate.link_graph(evaluate.read_vault(tmp_path / "out" / "vault")).values())
    assert results["methods"]["lenslink"] == results["methods"]["fusion"]
    assert results["methods"]["lexical"]["recall@10"] > 0.2


# -- scoring ----------------------------------------------------------------------------
def test_score_note_by_hand():
    ranked = ["n", "x", "a", "a", "y", "z", "w", "b", "v", "u", "t", "s", "c"]
    # self and the repeated "a" dropped: x a y z w b v u t s | c -> hits at ranks 2 and 6
    got = evaluate.score_note({"a", "b", "c"}, ranked, "n")
    ndcg = (1 / math.log2(3) + 1 / math.log2(7)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert got == pytest.approx({"recall@5": 1 / 3, "recall@10": 2 / 3, "mrr@10": 0.5,
                                 "ndcg@10": ndcg})
    assert ndcg == pytest.approx(0.46324, abs=1e-5)
    assert evaluate.score_note({"a"}, ["a"], "n") == {"recall@5": 1.0, "recall@10": 1.0,
                                                      "mrr@10": 1.0, "ndcg@10": 1.0}
    assert evaluate.score_note({"a", "b"}, [], "n") == {"recall@5": 0.0, "recall@10": 0.0,
                                                        "mrr@10": 0.0, "ndcg@10": 0.0}
    # more gold than fits in the top 10: the ideal ranking is ten hits
    twelve = {f"g{i}" for i in range(12)}
    full = evaluate.score_note(twelve, sorted(twelve), "n")
    assert full["ndcg@10"] == pytest.approx(1.0) and full["recall@10"] == pytest.approx(10 / 12)


def test_evaluate_averages_over_gold_notes_and_a_missing_note_scores_zero():
    gold = {"n": ["a", "b"], "m": ["c", "d"]}
    res = evaluate.evaluate(gold, {"n": ["a", "b"], "other": ["c"]})
    assert res == {"recall@5": 0.5, "recall@10": 0.5, "mrr@10": 0.5, "ndcg@10": 0.5, "notes": 2}
    assert evaluate.evaluate({}, {})["notes"] == 0


@needs_shared
def test_score_note_matches_score_py_on_random_rankings():
    spec = importlib.util.spec_from_file_location("reference_score", EVAL / "score.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    rng = random.Random(0)
    names = [f"n{i}" for i in range(30)]
    for _ in range(300):
        gold = set(rng.sample(names, rng.randint(1, 14)))
        ranked = rng.choices(names, k=rng.randint(0, 25))
        note = rng.choice(names)
        assert evaluate.score_note(gold, ranked, note) == reference.score_note(gold, ranked, note)
