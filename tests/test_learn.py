"""Learning each lens's ranking from the vault's own links (learn.py, `lenslink train`).

The fixtures are synthetic vaults written in tmp_path: clusters of notes that share a
few theme words in a lot of common noise and link within their cluster (every note to
its cluster's hub and to two random cluster-mates). The text alone finds a cluster only
roughly; the links say which notes belong together, so a ranker that learns from them
has something to learn.

The held-out checks put the links in the frontmatter (`related: ["[[a]]", ...]`), where
they are links but not embedded text. With links in the body, their visible text is part
of what is embedded, so during training linked pairs look closer than a new note (no link
text yet) ever will; the xfail tests at the end show what that costs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lenslink import evaluate, learn
from lenslink.cli import main
from lenslink.vault import Vault

CLUSTERS = ("astronomy", "baking", "cycling", "databases", "gardening")
NOISE = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
         "zulu amber basil cedar dune ember frost grove harbor iris jade kelp lotus maple "
         "nectar olive pearl quartz raven sage thistle umber violet willow yarrow").split()
TOPIC_ONLY = '[lenses.topic]\nprefix = ""\n'


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def cluster_notes(size: int = 10, theme: int = 2, noise: int = 14, seed: int = 0,
                  folder: str = "notes", links_in: str = "body") -> tuple[dict[str, str], dict[str, list[str]]]:
    """({path: text}, {cluster: paths}): per cluster a hub ("<cluster> 0") that every
    other note links to, each note also linking to two random cluster-mates; a note's
    words are `theme` of its cluster's 8 theme words among `noise` shared words. Links
    go at the end of the body, or into a `related` frontmatter list."""
    rng = random.Random(seed)
    notes, members = {}, {}
    for name in CLUSTERS:
        themes = [f"{name}{k}" for k in range(8)]
        paths = [f"{folder}/{name} {i}.md" for i in range(size)]
        members[name] = paths
        for i, path in enumerate(paths):
            words = rng.sample(themes, theme) + rng.choices(NOISE, k=noise)
            rng.shuffle(words)
            targets = [paths[0]] if i else []
            targets += rng.sample([p for p in paths if p != path and p not in targets], 2)
            links = [f"[[{Path(t).stem}]]" for t in targets]
            if links_in == "body":
                notes[path] = f"{' '.join(words)}\n\nSee {' '.join(links)}\n"
            else:
                related = ", ".join(f'"{link}"' for link in links)
                notes[path] = f"---\nrelated: [{related}]\n---\n{' '.join(words)}\n"
    return notes, members


def write(root: Path, notes: dict[str, str], config: str | None = TOPIC_ONLY) -> Path:
    for rel, text in notes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    if config is not None:
        (root / ".lenslink.toml").write_text(config, encoding="utf-8")
    return root


class Trained:
    """A held-out task on the cluster vault: indexed, trained, its predictions made."""

    def __init__(self, base: Path, links_in: str):
        notes, self.members = cluster_notes(links_in=links_in)
        self.cluster_of = {p: c for c, ps in self.members.items() for p in ps}
        write(base / "source", notes)
        self.gold = evaluate.make_task(base / "source", base / "task", 0.3, seed=0)
        self.vault = Vault(base / "task" / "vault", db=base / "index.db", embedder="fake")
        self.vault.index()
        self.report = self.vault.train("topic")["topic"]
        self.ranking = self.vault.ranking()
        self.view = self.ranking.views["topic"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Built once for the module (training takes a second or two); explicit --db, so
    nothing reaches the user data folder even before the per-test fixtures run."""
    t = Trained(tmp_path_factory.mktemp("learn"), links_in="frontmatter")
    yield t
    t.vault.close()


@pytest.fixture(scope="module")
def trained_body_links(tmp_path_factory):
    """The same vault with the links in the note bodies (their text gets embedded)."""
    t = Trained(tmp_path_factory.mktemp("learn-body"), links_in="body")
    yield t
    t.vault.close()


# -- train / status through the command line ------------------------------------------
def test_train_stores_a_model_per_lens_and_status_says_learned(tmp_path, fake_embedder):
    notes, _ = cluster_notes()
    config = TOPIC_ONLY + '[lenses.again]\nprefix = "Again: "\n'
    vault = write(tmp_path / "v", notes, config)
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    before = json.loads(run("status", vault, "--json").output)
    assert [(l["name"], l["ranking"]) for l in before["lenses"]] == \
        [("topic", "unsupervised"), ("again", "unsupervised")]

    result = run("train", vault, "--embedder", "fake")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines] == ["topic", "again"]
    assert all("trained on 50 linked notes" in line and "held-out log loss" in line for line in lines)

    with Vault(vault, embedder="fake") as v:
        stored = v.store.models(v.store.get_meta("embedder"))
        assert sorted(stored) == ["again", "topic"]
        assert {name: sig for name, (sig, *_rest) in stored.items()} == \
            {lens.name: lens.signature for lens in v.config.lenses}
    after = json.loads(run("status", vault, "--json").output)
    assert [(l["name"], l["ranking"], l["scores"]) for l in after["lenses"]] == \
        [("topic", "learned", "probability"), ("again", "learned", "probability")]
    text = run("status", vault).output
    assert "topic: 50 sources, 50 candidates, learned ranking, scores: probability" in text
    related = json.loads(run("related", vault, "notes/baking 3.md", "--json").output)
    assert related["related"] and {r["score_kind"] for r in related["related"]} == {"probability"}


def test_a_vault_with_too_few_links_is_not_trained_and_falls_back(tmp_path, fake_embedder):
    notes, _ = cluster_notes()   # 50 notes, but only 3 of them keep their links (9 links)
    linking = {"notes/astronomy 1.md", "notes/baking 1.md", "notes/cycling 1.md"}
    notes = {p: t if p in linking else t.split("\n\nSee")[0] for p, t in notes.items()}
    vault = write(tmp_path / "v", notes)
    assert run("index", vault, "--embedder", "fake").exit_code == 0

    result = run("train", vault, "--embedder", "fake")
    assert result.exit_code == 0, result.output
    assert result.output == "topic: not trained (too few links; using the unsupervised ranking)\n"
    with Vault(vault, embedder="fake") as v:
        assert v.store.models(v.store.get_meta("embedder")) == {}
    lens = json.loads(run("status", vault, "--json").output)["lenses"][0]
    assert (lens["ranking"], lens["scores"]) == ("unsupervised", "percentile")
    assert "unsupervised ranking (not learned: too few links, or it did not beat this one" in \
        run("status", vault).output
    related = json.loads(run("related", vault, "notes/baking 1.md", "--json").output)
    assert len(related["related"]) == 5
    assert {r["score_kind"] for r in related["related"]} == {"percentile"}
    assert all(0.0 <= r["score"] <= 1.0 for r in related["related"])


def test_a_model_trained_under_another_lens_signature_is_ignored(tmp_path, fake_embedder):
    notes, _ = cluster_notes()
    vault = write(tmp_path / "v", notes)
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    assert run("train", vault, "--embedder", "fake").exit_code == 0
    assert json.loads(run("status", vault, "--json").output)["lenses"][0]["ranking"] == "learned"

    write(vault, {}, '[lenses.topic]\nprefix = "About: "\n')   # the lens's text changed
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    lens = json.loads(run("status", vault, "--json").output)["lenses"][0]
    assert (lens["ranking"], lens["scores"]) == ("unsupervised", "probability")  # Platt on links
    with Vault(vault, embedder="fake") as v:
        assert list(v.store.models(v.store.get_meta("embedder"))) == ["topic"]  # kept, not used
        assert v.ranking().views["topic"].model is None

    write(vault, {}, TOPIC_ONLY)   # back to the text it was trained on: the model counts again
    assert run("index", vault, "--embedder", "fake").exit_code == 0
    assert json.loads(run("status", vault, "--json").output)["lenses"][0]["ranking"] == "learned"


# -- what training buys ----------------------------------------------------------------
def test_training_reduces_held_out_log_loss_against_the_fusion(trained):
    r = trained.report
    assert r["trained"] is True
    assert 20 <= r["queries"] <= 50 - len(trained.gold)   # new notes link nowhere
    assert 0 < r["positives"] < r["pairs"]
    assert 0 < r["heldout_log_loss"] < r["heldout_log_loss_fusion"]
    assert 0 <= r["heldout_ece"] < 0.2
    assert set(r["weights"]) == set(learn.FEATURES)


def recall(preds: dict[str, list[str]], trained: Trained, k: int = 9) -> float:
    """Mean share of a held-out note's 9 cluster-mates among its top k."""
    out = []
    for note in trained.gold:
        mates = set(trained.members[trained.cluster_of[note]]) - {note}
        out.append(len(set(preds[note][:k]) & mates) / len(mates))
    return float(np.mean(out))


def test_learned_ranker_finds_held_out_notes_cluster_mates_better_than_the_fusion(trained):
    preds = evaluate.rankings(trained.ranking, "topic", list(trained.gold))
    assert sorted(preds["lenslink"]) == sorted(trained.gold)
    learned, fusion = recall(preds["lenslink"], trained), recall(preds["fusion"], trained)
    assert learned >= fusion + 0.08, (learned, fusion)
    scores = {m: evaluate.evaluate(trained.gold, p)["recall@10"] for m, p in preds.items()}
    assert scores["lenslink"] > scores["fusion"], scores


def test_probabilities_are_in_0_1_and_increase_with_the_logit(trained):
    features, graph = trained.ranking.pair_features(trained.view)
    model = trained.view.model
    assert model is not None and features.projection is model.projection
    for note in list(trained.gold)[:5]:
        i = trained.view.position[trained.ranking.row[note]]
        cand, x = features.query(i, graph, trained.view.candidates)
        p = model.probability(x)
        assert np.all((p >= 0) & (p <= 1))
        logit = model.contributions(x).sum(axis=1) + model.bias
        np.testing.assert_allclose(p, 1 / (1 + np.exp(-logit)), rtol=1e-9)
        order = np.argsort(logit, kind="stable")
        assert np.all(np.diff(p[order]) >= 0)
    extreme = np.vstack([model.mean + 1e3 * model.std * np.sign(model.weights),
                         model.mean - 1e3 * model.std * np.sign(model.weights)])
    assert model.probability(extreme).tolist() == pytest.approx([1.0, 0.0], abs=1e-9)


def held_out_pairs(trained: Trained) -> tuple[np.ndarray, np.ndarray]:
    """(probability, linked) of every candidate the learned ranker scores for the new notes."""
    probs, linked = [], []
    for note, gold in trained.gold.items():
        for r in trained.ranking.related(note, "topic", 1000, min_score=0.0):
            probs.append(r.score)
            linked.append(r.path in gold)
    return np.array(probs), np.array(linked, dtype=float)


def test_held_out_pairs_more_likely_to_be_linked_where_the_probability_is_higher(trained):
    probs, linked = held_out_pairs(trained)
    assert linked.sum() >= 20 and len(probs) > 200
    assert probs[linked == 1].mean() > 2 * probs[linked == 0].mean()
    order = np.argsort(probs, kind="stable")
    bins = np.array_split(order, 3)   # low, middle, high predicted probability
    mean_p = [probs[b].mean() for b in bins]
    rate = [linked[b].mean() for b in bins]
    assert mean_p[0] < mean_p[1] < mean_p[2]
    assert max(rate[0], rate[1]) < rate[2], rate
    assert rate[2] > 0.1 and rate[0] < 0.05, rate


def test_held_out_probabilities_add_up_to_the_links_made(trained):
    probs, linked = held_out_pairs(trained)
    assert 0.5 < probs.sum() / linked.sum() < 1.5, (probs.sum(), linked.sum())


# Links in the body: the link's visible text ("See astronomy 0 ...") is in the embedded
# text of every training note but never in a new note's (drop-text), so the learned
# dense and projection signals overrate linked pairs in training and do not carry over.
LEAK = ("training folds hide links from the graph, not from the embedded text: a fold "
        "note's vector still holds its links' visible text (learn.training_set)")


@pytest.mark.xfail(strict=True, reason=LEAK)
def test_with_links_in_the_body_learned_ranker_still_beats_the_fusion(trained_body_links):
    t = trained_body_links
    preds = evaluate.rankings(t.ranking, "topic", list(t.gold))
    assert recall(preds["lenslink"], t) >= recall(preds["fusion"], t) + 0.05


@pytest.mark.xfail(strict=True, reason=LEAK)
def test_with_links_in_the_body_held_out_probabilities_add_up(trained_body_links):
    probs, linked = held_out_pairs(trained_body_links)
    assert 0.5 < probs.sum() / linked.sum() < 1.5, (probs.sum(), linked.sum())


# -- the parts -------------------------------------------------------------------------
def test_model_blob_round_trip(trained):
    model = trained.view.model
    assert model.projection is not None
    params, blob = learn.model_to_blob(model)
    params = json.loads(json.dumps(params))          # as stored: JSON text
    assert len(blob) == 2 * model.projection.q.size * 4
    back = learn.model_from_blob(params, blob)
    for name in ("mean", "std", "weights"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    assert back.bias == model.bias and back.report == model.report
    np.testing.assert_array_equal(back.projection.q, model.projection.q)
    np.testing.assert_array_equal(back.projection.k, model.projection.k)
    x = np.random.default_rng(0).normal(size=(7, len(learn.FEATURES)))
    np.testing.assert_array_equal(back.probability(x), model.probability(x))

    plain = learn.Model(model.mean, model.std, model.weights, model.bias, None, {"a": 1})
    params, blob = learn.model_to_blob(plain)
    assert blob == b"" and "projection_shape" not in params
    again = learn.model_from_blob(json.loads(json.dumps(params)), blob)
    assert again.projection is None and again.report == {"a": 1}
    params["features"] = params["features"][:-1]       # trained by another version
    assert learn.model_from_blob(params, blob) is None


def test_graph_without_hides_out_links_and_in_links_of_hidden_notes():
    graph = learn.Graph(5, {0: {1, 2}, 1: {2}, 3: {0, 2, 4}})
    assert graph.indegree.tolist() == [1, 1, 3, 0, 1]
    hidden = graph.without({2, 3})
    assert hidden.out == {0: {1}, 1: set()}
    assert hidden.indegree.tolist() == [0, 1, 0, 0, 0]
    assert hidden.n == 5
    assert graph.out == {0: {1, 2}, 1: {2}, 3: {0, 2, 4}}      # the original is untouched
    assert graph.without(set()).out == graph.out


def test_sum_rows_equals_np_add_at():
    rng = np.random.default_rng(0)
    index = rng.integers(0, 30, size=500)
    values = rng.normal(size=(500, 8)).astype(np.float32)
    expected = np.zeros((40, 8))
    np.add.at(expected, index, values)
    got = learn._sum_rows(index, values, 40)
    assert got.shape == (40, 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert not got[30:].any()


def test_symmetric_lens_shares_q_and_k_asymmetric_lens_learns_both(tmp_path, fake_embedder):
    notes, members = cluster_notes(size=4, folder="topics")
    rng = random.Random(1)
    for n in range(30):      # log entries about one cluster, linking to two of its topics
        name = CLUSTERS[n % len(CLUSTERS)]
        words = [f"{name}{k}" for k in rng.sample(range(8), 2)] + rng.choices(NOISE, k=10)
        targets = rng.sample(members[name], 2)
        notes[f"log/entry {n}.md"] = " ".join(words) + "\n\n" + \
            " ".join(f"[[{Path(t).stem}]]" for t in targets) + "\n"
    config = TOPIC_ONLY + ('[lenses.log]\nsource = { globs = ["log/**"] }\n'
                           'candidates = { globs = ["topics/**"] }\n')
    with Vault(write(tmp_path / "v", notes, config), embedder="fake") as v:
        v.index()
        reports = v.train()
        assert reports["log"]["trained"] and reports["topic"]["trained"]
        views = v.ranking().views
        log, topic = views["log"].model.projection, views["topic"].model.projection
    assert log.q.shape == log.k.shape == (learn.PROJ_DIM, 64)
    assert not np.allclose(log.q, log.k, atol=1e-3)
    np.testing.assert_array_equal(topic.q, topic.k)


def _sketched_and_exact(tmp_path, monkeypatch, dim: int):
    """The cluster vault's ranking loaded twice: exact, and with a sketch of `dim` axes."""
    from lenslink import rank

    root = write(tmp_path / "vault", cluster_notes()[0])
    with Vault(root, db=tmp_path / "index.db", embedder="fake") as vault:
        vault.index()
        load = lambda: rank.VaultIndex.load(vault.store, vault.config, vault.store.get_meta("embedder"))  # noqa: E731
        exact = load()
        monkeypatch.setattr(rank, "SKETCH_MIN_NOTES", 1)
        monkeypatch.setattr(rank, "SKETCH_DIM", dim)
        sketched = load()
    assert exact.views["topic"].sketch is None and sketched.views["topic"].sketch is not None
    return exact, sketched


def test_a_full_sketch_gives_the_exact_centred_cosine(tmp_path, fake_embedder, monkeypatch):
    exact, sketched = _sketched_and_exact(tmp_path, monkeypatch, dim=64)  # every axis of the fake's 64
    view_e, view_s = exact.views["topic"], sketched.views["topic"]
    for i in (0, 7, 30):
        np.testing.assert_allclose(view_s.sketched(i), view_e.similarities(i)[0], atol=1e-4)


def test_learned_features_of_a_sketched_lens_hold_the_candidates_exact_cosines(tmp_path, fake_embedder,
                                                                                monkeypatch):
    """Large lenses pick a learned query's candidates with the sketch's cosines; the
    candidates' dense and raw features are still the exact cosines."""
    exact, sketched = _sketched_and_exact(tmp_path, monkeypatch, dim=6)
    view_e, view_s = exact.views["topic"], sketched.views["topic"]
    features, graph = sketched.pair_features(view_s)
    dense, raw = learn.FEATURES.index("dense"), learn.FEATURES.index("raw")
    approximate = False
    for i in np.flatnonzero(view_s.sources)[:15]:
        cand, x = features.query(int(i), graph, view_s.candidates)
        want_dense, want_raw = view_e.similarities(int(i), cand)
        np.testing.assert_allclose(x[:, dense], want_dense, atol=1e-5)
        np.testing.assert_allclose(x[:, raw], want_raw, atol=1e-5)
        approximate |= not np.allclose(view_s.sketched(int(i))[cand], want_dense, atol=1e-3)
    assert approximate  # 6 axes of 64: the sketch alone would have been off
