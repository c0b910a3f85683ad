"""Ranking, calibration and the lexical signals.

Ranking runs on real indexes built with the bag-of-words fake embedder, so "similar"
means "shares words", and what a note should find is known by construction.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter

import numpy as np
import pytest

from lenslink import boilerplate, calibrate, lexical, rank
from lenslink.lexical import MAX_QUERY_TERMS, Mentions, TfIdf, normalise
from lenslink.rank import VaultIndex
from lenslink.store import Store
from lenslink.vault import Vault

CLUSTERS = {
    "baking": "sourdough rye flour starter loaf oven bake crust levain proof",
    "garden": "tomato compost soil water seeds garden beds mulch weeds harvest",
    "server": "server backup disk linux docker network router raid ssh uptime",
    "travel": "train hotel map japan tokyo ticket luggage station kyoto ferry",
    "money": "budget savings invest income tax pension fund rent salary loan",
}
COMMON = "today some thing really good then also maybe other time".split()
TEMPLATE = "Tasks morning evening Notes Gratitude checklist"


def cluster_notes(per_cluster: int = 6, linked: bool = True, seed: int = 0) -> dict[str, str]:
    """Notes in topic clusters; with `linked`, each links to the next two of its cluster."""
    rng = random.Random(seed)
    notes = {}
    for name, vocab in CLUSTERS.items():
        words = vocab.split()
        for i in range(per_cluster):
            text = " ".join(rng.sample(words, 6) + rng.sample(COMMON, 2))
            if linked:
                text += f"\n\nSee [[{name} {(i + 1) % per_cluster}]] and [[{name} {(i + 2) % per_cluster}]].\n"
            notes[f"{name}/{name} {i}.md"] = text
    return notes


def daily_notes() -> dict[str, str]:
    """Daily notes that share a template, each about one cluster."""
    out = {}
    for day, name in enumerate(["baking", "garden", "server", "travel", "money"], start=2):
        words = CLUSTERS[name].split()[:3]
        out[f"daily/2026-11-0{day}.md"] = f"{TEMPLATE}\n- {' '.join(words)}\n"
    return out


@pytest.fixture
def open_vault(tiny_vault, tmp_path, fake_embedder):
    """Build, index and open a vault; closed at the end of the test."""
    opened = []

    def make(notes: dict, config: str | None = None) -> Vault:
        root = tiny_vault(notes, config=config, name=f"vault{len(opened)}")
        vault = Vault(root, db=tmp_path / f"index{len(opened)}.db", embedder="fake")
        opened.append(vault)
        vault.index()
        return vault

    yield make
    for vault in opened:
        vault.close()


def paths(results) -> list[str]:
    return [r.path for r in results]


def test_a_full_load_reads_vectors_in_batches_and_gets_the_floats_of_whole_matrices(open_vault, monkeypatch):
    """A full load makes the notes' vectors from batches of chunks, never holding a lens's
    chunk matrix, and narrows the float64 vectors to float32 in place: every array must be
    what the lens's whole matrix gave, bit for bit; lenses with the same chunks (topic and
    daily) share theirs, and a lens without chunks is empty as it was."""
    batches = Store.lens_vector_batches
    sizes = []

    def small_batches(self, embedder_id, lens, size=2048):
        for batch in batches(self, embedder_id, lens, 3):  # a long note goes on past 3 rows
            sizes.append(len(batch[0]))
            yield batch

    monkeypatch.setattr(Store, "lens_vector_batches", small_batches)
    monkeypatch.setattr(rank, "SKETCH_MIN_NOTES", 10)
    rng = random.Random(7)
    long_note = "\n\n".join(" ".join(rng.choices(CLUSTERS["baking"].split(), k=120)) for _ in range(8))
    notes = {**cluster_notes(), **daily_notes(), "long.md": long_note,
             "projects/alpha.md": "#project " + CLUSTERS["server"]}
    for vault, empty in ((open_vault(notes), []), (open_vault(cluster_notes()), ["project"])):
        embedder_id = vault.store.get_meta("embedder")
        index = VaultIndex.load(vault.store, vault.config, embedder_id)
        assert index.views["daily"].raw is index.views["topic"].raw
        assert index.views["project"].raw is not index.views["topic"].raw
        for name, view in index.views.items():
            paths, _, _, matrix = vault.store.lens_vectors(embedder_id, name, texts=False)
            if name in empty:  # the project lens of a vault without project notes
                assert not paths and view.raw.shape == (0, 0) and view.centring.shape == (0, 2)
                assert view.rows.dtype == np.int64 and len(view.rows) == len(view.mean) == 0
                continue
            starts = [i for i, p in enumerate(paths) if i == 0 or p != paths[i - 1]]
            sums = np.add.reduceat(matrix.astype(np.float64), starts, axis=0)
            vecs = sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)
            mean = vecs.mean(axis=0)
            centring = np.zeros((len(vecs), 2), dtype=np.float32)
            centring[:, 0] = vecs @ mean
            centring[:, 1] = 1.0 / np.linalg.norm(vecs - mean, axis=1).clip(1e-12)
            assert view.rows.tolist() == [index.row[paths[i]] for i in starts]
            for got, want in ((view.raw, vecs.astype(np.float32)), (view.mean, mean), (view.centring, centring)):
                assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()
            assert view.sketch is not None and view.sketch.shape == (len(vecs), min(rank.SKETCH_DIM, vecs.shape[1]))
    assert max(sizes) > 3  # the long note's chunks came in one batch


def test_centred_cosine_from_raw_vectors_equals_cosine_of_the_centred_vectors(open_vault):
    """The view keeps raw vectors and two numbers per note; what it computes must be
    the cosine of the explicitly centred vectors, for one note and for a batch."""
    index = open_vault(cluster_notes()).ranking()
    view = index.views["topic"]
    raw = view.raw.astype(np.float64)
    centred = raw - raw.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    reference = centred @ centred.T
    assert reference.min() < -0.1  # centred vectors point apart: the test can tell
    for i in (0, 3):
        cos, dots = view.similarities(i)
        np.testing.assert_allclose(cos, reference[i], atol=1e-5)
        np.testing.assert_allclose(dots, raw @ raw[i], atol=1e-5)
    batch = np.array([1, 4, 2])
    cols = np.array([0, 5, 6])
    np.testing.assert_allclose(view.similarities(batch, cols)[0], reference[np.ix_(batch, cols)], atol=1e-5)
    np.testing.assert_allclose(view.centred_rows(batch), centred[batch], atol=1e-5)


# ---------------------------------------------------------------- related

def test_related_never_includes_the_note_itself(open_vault):
    vault = open_vault(cluster_notes())
    for note in vault.ranking().lens_notes("topic"):
        found = vault.related(note, "topic", top=100, min_score=0.0)
        assert note not in paths(found)
        assert len(found) == 29


def test_notes_find_their_own_cluster_first(open_vault):
    vault = open_vault(cluster_notes(linked=False))
    for note in vault.ranking().lens_notes("topic"):
        cluster = note.split("/")[0]
        assert {p.split("/")[0] for p in paths(vault.related(note, "topic", top=3))} == {cluster}


def test_daily_lens_never_suggests_daily_notes_though_they_are_the_most_similar(open_vault):
    vault = open_vault({**cluster_notes(), **daily_notes()})
    day = "daily/2026-11-02.md"
    # under the plain lens, the shared template makes the other days the best matches
    assert paths(vault.related(day, "topic", top=1))[0].startswith("daily/")
    found = vault.related(day, "daily", top=10)
    assert len(found) == 10
    assert not any(p.startswith("daily/") for p in paths(found))
    assert paths(found)[0].startswith("baking/")  # what the day was about
    # and the daily lens gives nothing to non-daily notes (they are not its source)
    assert vault.related("baking/baking 0.md", "daily") == []


def test_top_k_from_the_lens_and_from_the_call(open_vault):
    config = '[lenses.topic]\ntop_k = 4\nmin_score = 0\n[lenses.wide]\ntop_k = 7\nmin_score = 0\n'
    vault = open_vault(cluster_notes(), config=config)
    note = "garden/garden 0.md"
    assert len(vault.related(note, "topic")) == 4
    assert len(vault.related(note, "wide")) == 7
    assert len(vault.related(note, "topic", top=2)) == 2
    assert paths(vault.related(note, "topic", top=2)) == paths(vault.related(note, "topic"))[:2]


@pytest.mark.parametrize("linked", [False, True], ids=["percentile", "probability"])
def test_min_score_drops_weak_suggestions(open_vault, linked):
    config = ('[lenses.all]\ntop_k = 29\nmin_score = 0\n[lenses.strict]\ntop_k = 29\nmin_score = 0.5\n'
              '[lenses.default]\ntop_k = 29\n')
    vault = open_vault(cluster_notes(linked=linked), config=config)
    note = "money/money 0.md"
    everything = vault.related(note, "all")
    strict = vault.related(note, "strict")
    assert len(everything) == 29
    assert {r.score_kind for r in everything} == {"probability" if linked else "percentile"}
    assert 0 < len(strict) < 29
    assert all(r.score >= 0.5 for r in strict)
    assert paths(strict) == [r.path for r in everything if r.score >= 0.5]
    # by default, what would be linked 1 time in 20 or less is left out
    assert paths(vault.related(note, "default")) == [r.path for r in everything if r.score >= 0.05]


def test_ties_are_broken_by_path_also_at_the_cut(open_vault, monkeypatch):
    monkeypatch.setattr(boilerplate, "MIN_NOTES", 100)  # 8 identical notes are not a template here
    same = "apple banana cherry\n"
    notes = {f"t{i}/Same.md": same for i in range(8)}
    notes["Query.md"] = "apple banana cherry date\n"
    notes.update({f"other{i}.md": f"zebra{i} yak{i} walrus\n" for i in range(6)})
    vault = open_vault(notes)
    for k in (1, 2, 3, 5, 8):
        found = vault.related("Query.md", "topic", top=k)
        assert len({r.raw for r in found}) == 1
        assert paths(found) == [f"t{i}/Same.md" for i in range(k)]


def test_results_are_sorted_and_deterministic(open_vault):
    vault = open_vault(cluster_notes())
    first = [r.to_dict() for r in vault.related("server/server 3.md", "topic", top=29)]
    raws = [r["reason"]["raw"] for r in first]
    assert raws == sorted(raws, reverse=True)
    vault._index = None  # reload from the store
    assert [r.to_dict() for r in vault.related("server/server 3.md", "topic", top=29)] == first


def test_linked_notes_are_marked_not_hidden(open_vault):
    vault = open_vault(cluster_notes())
    found = vault.related("travel/travel 0.md", "topic", top=29)
    linked = {r.path for r in found if r.linked}
    assert linked == {"travel/travel 1.md", "travel/travel 2.md"}
    # backlinks are not "linked": only what this note links to
    assert not next(r for r in found if r.path == "travel/travel 5.md").linked


def test_opted_out_note_is_never_suggested(open_vault):
    notes = cluster_notes(linked=False)
    notes["baking/secret.md"] = "---\nlenslink: false\n---\n" + CLUSTERS["baking"] + "\n"
    vault = open_vault(notes)
    for note in vault.ranking().lens_notes("topic"):
        assert "baking/secret.md" not in paths(vault.related(note, "topic", top=100))
    assert vault.related("baking/secret.md", "topic") == []


def test_unknown_note_and_unknown_lens(open_vault):
    from lenslink.errors import ConfigError, NotFound

    vault = open_vault(cluster_notes())
    with pytest.raises(NotFound, match="no note 'nope'"):
        vault.related("nope")
    with pytest.raises(ConfigError, match="unknown lens 'colour'; lenses: topic, project, daily"):
        vault.related("money/money 0.md", "colour")


@pytest.mark.parametrize("linked", [True, False])
def test_scores_are_in_0_1_and_monotone_in_the_raw_score(open_vault, linked):
    vault = open_vault(cluster_notes(linked=linked))
    for note in ["baking/baking 0.md", "server/server 4.md", "money/money 5.md"]:
        found = vault.related(note, "topic", top=29)
        scores = [r.score for r in found]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert scores == sorted(scores, reverse=True)  # results come sorted by raw
        assert scores[0] > scores[-1]
        assert {r.score_kind for r in found} == {"probability" if linked else "percentile"}


# ---------------------------------------------------------------- calibration

def pair_probabilities(index: VaultIndex, lens: str = "topic"):
    """(probabilities of linked pairs, probabilities of unlinked pairs) under a lens."""
    view = index.views[lens]
    linked, unlinked = [], []
    for i in range(len(view.rows)):
        path = index.notes[int(view.rows[i])].path
        probs = view.calibrator(index.raw_scores(view, i)[0])
        for j in range(len(view.rows)):
            if j != i:
                other = index.notes[int(view.rows[j])].path
                (linked if other in index.links.get(path, ()) else unlinked).append(probs[j])
    return np.array(linked), np.array(unlinked)


def test_with_enough_links_scores_are_link_probabilities(open_vault):
    vault = open_vault(cluster_notes())
    index = vault.ranking()
    assert index.views["topic"].calibrator.kind == "probability"
    linked, unlinked = pair_probabilities(index)
    assert len(linked) == 60
    assert linked.mean() > 3 * unlinked.mean()
    # roughly calibrated: the mean probability is near the true share of linked pairs
    share = len(linked) / (len(linked) + len(unlinked))
    assert abs(np.concatenate([linked, unlinked]).mean() - share) < 0.02


def test_without_links_scores_are_percentiles(open_vault):
    vault = open_vault(cluster_notes(linked=False))
    calibrator = vault.ranking().views["topic"].calibrator
    assert calibrator.kind == "percentile"
    assert len(calibrator.reference) > 0


def test_percentile_calibrator():
    cal = calibrate.Calibrator("percentile", reference=(0.1, 0.2, 0.3, 0.4))
    assert list(cal(np.array([0.0, 0.1, 0.25, 0.4, 9.0]))) == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert list(calibrate.Calibrator("percentile")(np.array([0.3]))) == [0.0]


def test_fit_falls_back_to_percentiles_with_few_positives():
    cal = calibrate.fit(np.ones(9), np.zeros(50), np.arange(100.0))
    assert cal.kind == "percentile"
    assert cal.reference == tuple(np.arange(100.0))
    assert calibrate.fit(np.ones(10) + np.arange(10), np.arange(50.0), np.arange(5.0)).kind == \
        "probability"


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_fit_platt_recovers_a_known_logistic_relation():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1.5, 40_000)
    y = rng.random(len(x)) < sigmoid(3.0 * x - 1.0)
    a, b = calibrate.fit_platt(x, y)
    assert a == pytest.approx(3.0, abs=0.1)
    assert b == pytest.approx(-1.0, abs=0.06)


def test_fit_platt_on_separable_data_stays_finite():
    a, b = calibrate.fit_platt(np.array([0.0, 0.1, 0.9, 1.0]), np.array([0, 0, 1, 1]))
    assert math.isfinite(a) and math.isfinite(b) and a > 0


def test_expected_calibration_error():
    rng = np.random.default_rng(1)
    probs = rng.random(50_000)
    calibrated = rng.random(len(probs)) < probs
    assert calibrate.expected_calibration_error(probs, calibrated) < 0.01
    overconfident = rng.random(len(probs)) < 0.5  # the outcome ignores the prediction
    assert calibrate.expected_calibration_error(probs, overconfident) == pytest.approx(0.25, abs=0.01)
    assert calibrate.expected_calibration_error(np.array([1.0, 1.0]), np.array([0, 0])) == 1.0


# ---------------------------------------------------------------- lexical

CORPUS = [
    "The sourdough starter needs rye flour and water, rye again.",
    "Rye bread: flour, water, salt and a sourdough starter.",
    "Tomatoes need water and compost; compost again.",
    "Backups of the home server run every night.",
    "The server needs a new disk before the backups fail.",
    "",
    "Unique words only here: zebra quokka.",
    "flour flour flour FLOUR",
]


def dense_tfidf_cosines(texts: list[str]) -> np.ndarray:
    """Reference: 1 + log tf, idf = ln((1 + n) / (1 + df)) + 1, L2 rows, all pairs."""
    docs = [Counter(re.findall(r"\w{2,}", t.lower())) for t in texts]
    vocab = sorted({w for d in docs for w in d})
    n = len(texts)
    df = {w: sum(w in d for d in docs) for w in vocab}
    m = np.zeros((n, len(vocab)))
    for i, d in enumerate(docs):
        for j, w in enumerate(vocab):
            if d[w]:
                m[i, j] = (1 + math.log(d[w])) * (math.log((1 + n) / (1 + df[w])) + 1)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    m = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
    return m @ m.T


def test_tfidf_similarities_equal_a_dense_brute_force_cosine():
    reference = dense_tfidf_cosines(CORPUS)
    tfidf = TfIdf(CORPUS)
    off_diagonal = ~np.eye(len(CORPUS), dtype=bool)
    for i in range(len(CORPUS)):
        got = tfidf.similarities_to(CORPUS[i], top=None)
        assert got.dtype == np.float32 and got.shape == (len(CORPUS),)
        np.testing.assert_allclose(got[off_diagonal[i]], reference[i][off_diagonal[i]],
                                   rtol=1e-5, atol=1e-7)
    assert reference[0, 1] > 0.5 and reference[3, 4] > 0.3  # the corpus has real overlaps


def test_tfidf_of_an_empty_corpus_and_empty_text():
    assert list(TfIdf(["", "words here"]).similarities_to("")) == [0.0, 0.0]
    assert list(TfIdf([]).similarities_to("words")) == []


def postings_from_a_dict_per_text(texts: list[str]):
    """Reference: (vocab, idf, term_docs, term_weights, term_ptr) as TfIdf built them from
    every text's dict of counts and dict of weights, all held at once."""
    counts = [Counter(lexical.TOKEN.findall(t.lower())) for t in texts]
    df = Counter(term for c in counts for term in c)
    n = len(texts)
    vocab = {t: i for i, t in enumerate(sorted(t for t, k in df.items() if k >= 2))}
    idf = {t: math.log((1 + n) / (1 + k)) + 1 for t, k in df.items()}
    doc_terms, doc_weights, doc_sizes = [], [], []
    for c in counts:
        w = {t: (1 + math.log(k)) * idf[t] for t, k in c.items()}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        kept = sorted((vocab[t], v / norm) for t, v in w.items() if t in vocab)
        doc_terms += [k for k, _ in kept]
        doc_weights += [v for _, v in kept]
        doc_sizes.append(len(kept))
    terms = np.asarray(doc_terms, dtype=np.int32)
    order = np.argsort(terms, kind="stable")
    docs = np.repeat(np.arange(n, dtype=np.int32), doc_sizes)
    return (vocab, idf, docs[order], np.asarray(doc_weights, dtype=np.float32)[order],
            np.concatenate([[0], np.cumsum(np.bincount(terms, minlength=len(vocab)))]))


def test_a_streamed_tfidf_is_the_one_built_from_a_dict_per_text_to_the_bit(monkeypatch):
    """A full load streams the notes' texts (each tokenised and dropped) and computes the
    weights in numpy by blocks of texts: the postings must be those of the dict per text
    it replaced, bit for bit (the calibration and every lexical score depend on them)."""
    monkeypatch.setattr(lexical, "TEXTS_PER_BLOCK", 7)  # many blocks, the last one short
    rng = random.Random(5)
    words = [f"w{k}" for k in range(300)] + ["Café", "naïve", "日本語", "x", "A_b"]
    texts = [" ".join(rng.choices(words, k=rng.randint(0, 80))) * rng.choice([1, 1, 3]) for _ in range(200)]
    texts[10] = ""
    texts[11] = "once only: unique words here"
    vocab, idf, docs, weights, ptr = postings_from_a_dict_per_text(texts)
    assert len(vocab) < len(idf) and max(Counter(texts[0].split()).values()) > 1  # the cases are there
    streamed = [TfIdf(texts), TfIdf(iter(texts)),
                TfIdf.of_docs(len(texts), ((i, t) for i, t in enumerate(texts) if i % 5))]
    texts_without = [t if i % 5 else "" for i, t in enumerate(texts)]  # what of_docs above indexed
    for tfidf, reference in zip(streamed, [(vocab, idf, docs, weights, ptr)] * 2
                                + [postings_from_a_dict_per_text(texts_without)]):
        assert list(tfidf.vocab.items()) == list(reference[0].items())
        assert list(tfidf.idf.items()) == list(reference[1].items())
        for got, want in zip((tfidf.term_docs, tfidf.term_weights, tfidf.term_ptr), reference[2:]):
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        assert tfidf.n == tfidf.base_n == len(texts)


def test_tfidf_weights_in_numpy_are_the_floats_of_a_dict_per_text():
    """What the streamed build computes by blocks of texts, in float64, before the
    postings round it to float32: exactly Python's floats (a sum in another order, or a
    numpy log, would differ in the last bits and could round the other way)."""
    rng = random.Random(6)
    idf = {f"w{k}": rng.uniform(1.0, 12.0) for k in range(500)}
    texts = [Counter(rng.choices(list(idf), k=rng.randint(0, 300))) for _ in range(300)]
    sizes = np.array([len(c) for c in texts])
    counts = np.array([k for c in texts for k in c.values()], dtype=np.int32)
    got = lexical.tfidf_weights(sizes, counts, np.array([idf[t] for c in texts for t in c]))
    want = []
    for c in texts:
        w = {t: (1 + math.log(k)) * idf[t] for t, k in c.items()}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        want += [v / norm for v in w.values()]
    assert got.dtype == np.float64 and got.tolist() == want


def test_a_streamed_tfidf_takes_documents_in_order_only():
    with pytest.raises(ValueError):
        TfIdf.of_docs(3, [(1, "some words"), (0, "other words")])


def test_a_long_query_uses_its_heaviest_terms_with_the_weights_of_the_whole_text():
    rng = random.Random(3)
    words = [f"w{k}" for k in range(120)]
    texts = [" ".join(rng.choices(words, k=rng.randint(20, 200))) for _ in range(60)]
    tfidf = TfIdf(texts)
    query = " ".join(rng.choices(words, k=400))  # more distinct words than the cap
    all_terms, all_weights = tfidf.vector(query)
    assert len(all_terms) > MAX_QUERY_TERMS
    terms, weights = tfidf.vector(query, MAX_QUERY_TERMS)
    assert len(terms) == MAX_QUERY_TERMS and list(terms) == sorted(terms)
    heaviest = {int(t) for t, _ in sorted(zip(all_terms, all_weights), key=lambda tw: -tw[1])[:MAX_QUERY_TERMS]}
    assert set(terms.tolist()) == heaviest
    full = dict(zip(all_terms.tolist(), all_weights.tolist()))
    assert all(full[t] == pytest.approx(w) for t, w in zip(terms.tolist(), weights.tolist()))
    capped, whole = tfidf.similarities_to(query), tfidf.similarities_to(query, top=None)
    for doc, text in enumerate(texts):  # the dot product over the kept terms
        d_terms, d_weights = tfidf.vector(text)
        d = dict(zip(d_terms.tolist(), d_weights.tolist()))
        assert capped[doc] == pytest.approx(sum(w * d.get(t, 0.0) for t, w in zip(terms.tolist(), weights.tolist())), abs=1e-6)
    assert (capped <= whole + 1e-6).all() and (capped < whole - 1e-4).any()


def test_a_query_reads_at_most_its_postings_budget_heaviest_words_first(monkeypatch):
    rng = random.Random(4)
    words = [f"w{k}" for k in range(40)]
    texts = [" ".join(rng.choices(words, k=rng.randint(5, 60))) for _ in range(50)]
    tfidf = TfIdf(texts)
    query = " ".join(rng.choices(words, k=100))
    terms, weights = tfidf.vector(query, MAX_QUERY_TERMS)
    postings = {int(t): int(tfidf.term_ptr[t + 1] - tfidf.term_ptr[t]) for t in terms}
    heaviest = [int(t) for t, _ in sorted(zip(terms, weights), key=lambda tw: (-tw[1], tw[0]))]
    budget = sum(postings[t] for t in heaviest[:5]) + postings[heaviest[5]] - 1  # 5 fit, not 6
    monkeypatch.setattr(lexical, "MAX_QUERY_POSTINGS", budget)
    got = tfidf.similarities_to(query)
    kept = dict(zip(terms.tolist(), weights.tolist()))
    for doc, text in enumerate(texts):  # the dot product over the 5 heaviest words
        d_terms, d_weights = tfidf.vector(text)
        d = dict(zip(d_terms.tolist(), d_weights.tolist()))
        assert got[doc] == pytest.approx(sum(kept[t] * d.get(t, 0.0) for t in heaviest[:5]), abs=1e-6)
    assert not np.allclose(got, tfidf.similarities_to(query, top=None))
    monkeypatch.setattr(lexical, "MAX_QUERY_POSTINGS", 1)  # the heaviest word always counts
    only = tfidf.similarities_to(query)
    assert only.max() > 0 and np.count_nonzero(only) == postings[heaviest[0]]


def sketched(monkeypatch, dim: int = 8) -> None:
    """Sketches for lenses of any size (they start at thousands of notes)."""
    monkeypatch.setattr(rank, "SKETCH_MIN_NOTES", 1)
    monkeypatch.setattr(rank, "SKETCH_DIM", dim)


def test_the_sketch_is_the_centred_vectors_on_principal_axes(open_vault, monkeypatch):
    sketched(monkeypatch)
    view = open_vault(cluster_notes(per_cluster=10)).ranking().views["topic"]
    assert view.basis.shape == (view.raw.shape[1], 8)
    np.testing.assert_allclose(view.basis.T @ view.basis, np.eye(8), atol=1e-5)
    centred = view.centred_rows(np.arange(len(view.rows)))
    np.testing.assert_allclose(view.sketch, centred @ view.basis, atol=1e-5)
    # the first axes carry more of the vectors than any other 8 directions would
    kept = np.linalg.norm(view.sketch, axis=1) ** 2
    assert kept.mean() > 8 / view.raw.shape[1] * 2


def test_a_shortlist_from_the_sketch_gives_the_exact_ranking(open_vault, monkeypatch):
    notes = cluster_notes(per_cluster=12, linked=False)
    exact_vault = open_vault(notes)
    exact = exact_vault.ranking()
    assert exact.views["topic"].sketch is None  # small lenses: exact cosine for every note
    sketched(monkeypatch)
    monkeypatch.setattr(rank, "SHORTLIST", 20)
    index = open_vault(notes).ranking()
    view = index.views["topic"]
    allowed = view.candidates.copy()
    allowed[0] = False
    assert len(view.shortlist(0, np.zeros(len(allowed), np.float32), allowed, 20)) == 20
    # more results than the shortlist holds: the shortlist grows to twice their number
    assert paths(index.related("baking/baking 0.md", "topic", 40)) == \
        paths(exact.related("baking/baking 0.md", "topic", 40))
    assert len(paths(index.related("baking/baking 0.md", "topic", 25, min_score=0.0))) == 25
    for note in index.lens_notes("topic"):
        got, want = index.related(note, "topic", 5), exact.related(note, "topic", 5)
        assert [(r.path, round(r.score, 6), round(r.cosine, 5), r.passage) for r in got] == \
            [(r.path, round(r.score, 6), round(r.cosine, 5), r.passage) for r in want], note


def test_mentions_find_multi_word_titles_and_aliases_as_whole_words():
    mentions = Mentions([
        ["Garden irrigation"],
        ["Python", "Monty language"],
        ["SQL"],
        ["Sourdough starter", "Gus"],   # 3 characters are enough
        ["AI"],                          # shorter: never matched
        ["Tom Becker"],
    ])
    text = ("Planning the garden  irrigation, in the Monty-language; pythonic SQLite code, "
            "then feed Gus. Said hi to Tom. AI everywhere.")
    assert mentions.mentioned(text) == {0, 1, 3}
    assert mentions.mentioned("GARDEN IRRIGATION") == {0}
    assert mentions.mentioned("garden") == set()
    assert mentions.mentioned("Tom Becker") == {5}
    assert mentions.mentioned("tombecker python") == {1}


def test_mentioning_one_target_agrees_with_the_mentions_of_each_text(open_vault):
    """`mentioning` (one target, many texts; the learned ranker's "mentioned by") and
    `mentioned_rows` (one text, every name) are two implementations of one test."""
    notes = {
        "Garden irrigation.md": "---\naliases: [Monty language]\n---\nWater the beds.",
        "SQL.md": "Tables.",
        "Tom Becker.md": "A person.",
        "C++ tips.md": "Pointers.",
        "a.md": "Planning the garden  irrigation, in the Monty-language; pythonic SQLite code.",
        "b.md": "GARDEN\nIRRIGATION and sql, said Tom_Becker to Tom  Becker.",
        "c.md": "gardenirrigation; c++ tips! sql-ish",
        "d.md": "Nothing here at all.",
        "e.md": "pregarden irrigation; mysql, then sql.",  # a name inside a word, then whole
    }
    index = open_vault(notes).ranking()
    rows = list(range(len(index.notes)))
    for target in rows:
        got = index.mentioning(rows, target)
        expected = [target in index.mentioned_rows(r) or (r == target and got[r]) for r in rows]
        assert got.tolist() == expected, index.notes[target].path
    row = {n.path: i for i, n in enumerate(index.notes)}
    assert index.mentioning([row["a.md"], row["b.md"], row["c.md"]], row["Garden irrigation.md"]).tolist() == \
        [True, True, False]
    assert index.mentioning([row["b.md"], row["c.md"]], row["C++ tips.md"]).tolist() == [False, True]
    assert index.mentioning([row["e.md"]], row["Garden irrigation.md"]).tolist() == [False]
    assert index.mentioning([row["e.md"], row["d.md"]], row["SQL.md"]).tolist() == [True, False]


def test_normalise():
    assert normalise("  Mexico-City,\nMEXICO ") == "mexico city mexico"
