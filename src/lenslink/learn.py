"""Learn each lens's similarity from the vault's own links (the essay's "optimise for the
similarity you care about"), numpy only.

A pair (query note, candidate) gets a handful of signals (pair features): centred and
raw cosine, a learned projection `sigma((Q v_a) . (K v_b))`, TF-IDF, title/alias
mentions both ways, shared tags and folder, and graph signals from existing links
("link votes": the query's nearest linked notes vote for what they link to; in-degree).
A logistic ranker over them is trained on folds that look like new notes: a whole fold's
links (and the links pointing to its notes) are removed before its features are
computed. Its output is the probability that the person would link the pair.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

FEATURES = ("dense", "raw", "proj", "lexical", "mention", "mentioned_by", "shared_tags",
            "same_folder", "vote_sum", "vote_max", "indegree",
            # the same signals relative to the query's other candidates: scales differ a
            # lot from note to note (a long note has higher TF-IDF to everything)
            "dense_z", "lexical_z", "proj_z", "vote_rel")
CANDIDATES = 100          # per query, from the unsupervised fusion
VOTE_NEIGHBOURS = 20
FOLDS = 5
MIN_LINKED_QUERIES = 10   # fewer linked source notes than this: no training, fall back
PROJ_DIM = 64
# Training cost caps (a seeded sample above them; real vaults of a few thousand notes stay
# below): notes whose candidates become training rows, and source notes whose links
# train the projection. They keep training at 100,000 notes to minutes.
MAX_TRAIN_QUERIES = 2000
MAX_PROJECTION_SOURCES = 1000


@dataclass
class Projection:
    """u = Q v for queries, K v for candidates (Q is K for symmetric lenses)."""
    q: np.ndarray
    k: np.ndarray

    def scores(self, vq: np.ndarray, vc: np.ndarray) -> np.ndarray:
        return (vc @ self.k.T) @ (self.q @ vq)


@dataclass
class Model:
    """A trained ranker for one lens."""
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: float
    projection: Projection | None
    report: dict = field(default_factory=dict)

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.std) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature contribution to the logit (for --explain)."""
        return ((x - self.mean) / self.std) * self.weights


class Graph:
    """Links between lens notes (lens-local indices), with a view that hides some."""

    def __init__(self, n: int, out: dict[int, set[int]]):
        self.n = n
        self.out = out
        self.linked = np.array(sorted(s for s, ts in out.items() if ts), dtype=np.int64)
        self.indegree = np.zeros(n)
        for targets in out.values():
            for t in targets:
                self.indegree[t] += 1

    def without(self, hidden: set[int]) -> "Graph":
        """The graph as if `hidden` notes were new: no out-links, no links to them."""
        return Graph(self.n, {s: {t for t in ts if t not in hidden}
                              for s, ts in self.out.items() if s not in hidden})


class PairFeatures:
    """Computes FEATURES for (query, candidates) within one lens view."""

    def __init__(self, index, view, projection: Projection | None = None):
        self.index = index
        self.view = view
        self.projection = projection
        self._scores: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._texts: list[str] | None = None  # training (`keep_texts`): every query text by row

    @property
    def projection(self) -> Projection | None:
        return self._projection

    @projection.setter
    def projection(self, value: Projection | None) -> None:
        self._projection = value
        self._uquk = None  # every lens note projected, on first use

    def _projected(self) -> tuple[np.ndarray, np.ndarray]:
        if self._uquk is None:
            v = self.view  # centred vectors times Q^T, from the raw ones and per-note numbers
            mean = v.mean.astype(np.float32)
            scale = v.centring[:, 1:2]
            # one assignment: request threads may ask at the same time
            self._uquk = tuple((v.raw @ m.T - mean @ m.T) * scale
                               for m in (self._projection.q, self._projection.k))
        return self._uquk

    def prefetch(self, queries: list[int]) -> None:
        """Dense and raw cosines of many queries at once (one matrix product, not one
        per query: much faster); `base_scores` then uses them once each."""
        v = self.view
        if v.sketch is not None:  # `base_scores` uses the sketch: cheap one by one
            return
        for start in range(0, len(queries), 256):
            batch = list(queries[start:start + 256])
            dense, raw = v.similarities(np.asarray(batch, dtype=np.int64))
            for k, i in enumerate(batch):
                self._scores[i] = (dense[k], raw[k])

    def keep_texts(self, texts: list[str] | None = None) -> None:
        """Keep every note's query text (training asks for most of them: one read), by
        vault row: `texts`, or read from the store."""
        self._texts = self.index.all_query_texts() if texts is None else texts

    def _mentioned_by_column(self, i: int, cand: np.ndarray) -> np.ndarray:
        """1.0 where candidate's text mentions query i's title or an alias."""
        return self.index.mentioning(self.view.rows[cand].tolist(), int(self.view.rows[i]),
                                     self._texts).astype(float)

    def mentions(self, i: int) -> set[int]:
        """Lens notes whose title or alias lens note i's text mentions."""
        pos, row = self.view.position, int(self.view.rows[i])
        rows = self.index.mentioned_rows(row, None if self._texts is None else self._texts[row])
        return {pos[r] for r in rows if r in pos} - {i}

    def _note(self, i: int):
        return self.index.notes[int(self.view.rows[i])]

    def base_scores(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centred cosine, raw cosine, tf-idf) of lens note i to every lens note. A lens
        with a sketch (rank.SKETCH_MIN_NOTES) gives the sketch's centred cosine (candidates
        and per-query statistics come from it) and no raw cosine (NaN): `exact_at` then
        puts in the candidates' exact cosines."""
        v = self.view
        row = int(v.rows[i])
        lexical = self.index.lexical(row, None if self._texts is None else self._texts[row])[v.rows]
        if i in self._scores:
            dense, raw = self._scores.pop(i)
        else:
            if v.sketch is not None:
                dense = v.sketched(i)
                raw = np.full(len(dense), np.nan, dtype=np.float32)
            else:
                dense, raw = v.similarities(i)
        return dense, raw, lexical

    def exact_at(self, i: int, cand: np.ndarray, dense: np.ndarray, raw: np.ndarray) -> None:
        """Put the exact cosines of query i to `cand` into `dense` and `raw` (in place;
        nothing to do unless they came from the sketch)."""
        if self.view.sketch is not None and len(cand):
            dense[cand], raw[cand] = self.view.similarities(i, cand)

    def candidates(self, i: int, graph: Graph, dense, lexical, allowed: np.ndarray) -> tuple[np.ndarray, dict]:
        """Candidate set for query i: fusion top-k, voted notes and mentioned notes."""
        fused = 0.5 * dense + 0.5 * lexical
        mention = np.zeros(len(fused))
        mentions = self.mentions(i)
        mention[list(mentions)] = 1.0
        fused = fused + 0.25 * mention
        votes_sum, votes_max = self.votes(i, graph, fused)
        score = np.where(allowed, fused, -np.inf)
        score[i] = -np.inf
        k = min(CANDIDATES, int(np.isfinite(score).sum()))
        picked = set(np.argpartition(-score, k - 1)[:k].tolist()) if k > 0 else set()
        extra = np.flatnonzero((votes_sum > 0) & allowed)
        picked |= set(extra.tolist()) | {j for j in mentions if allowed[j]}
        picked.discard(i)
        cand = np.array(sorted(picked), dtype=np.int64)
        return cand, {"mention": mention, "votes_sum": votes_sum, "votes_max": votes_max}

    def votes(self, i: int, graph: Graph, similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The query's most similar linked notes vote for their link targets."""
        n = len(similarity)
        vsum, vmax = np.zeros(n), np.zeros(n)
        linked = graph.linked[graph.linked != i]
        if len(linked) == 0:
            return vsum, vmax
        sims = similarity[linked]
        k = min(VOTE_NEIGHBOURS, len(linked))
        top = np.argpartition(-sims, k - 1)[:k]
        for j in top:
            w = max(float(sims[j]), 0.0)
            for t in graph.out[int(linked[j])]:
                vsum[t] += w
                vmax[t] = max(vmax[t], w)
        return vsum, vmax

    def matrix(self, i: int, cand: np.ndarray, graph: Graph, dense, raw, lexical, extra) -> np.ndarray:
        if self.projection is not None:
            uq, uk = self._projected()
            proj = uk[cand] @ uq[i]
        else:
            proj = np.zeros(len(cand))
        query = self._note(i)
        tags_q = set(query.tags)
        others = [self._note(j) for j in cand]
        shared = np.array([len(tags_q.intersection(o.tags)) for o in others], dtype=float)
        cols = {
            "dense": dense[cand], "raw": raw[cand], "proj": proj, "lexical": lexical[cand],
            "mention": extra["mention"][cand],
            "mentioned_by": self._mentioned_by_column(i, cand),
            "shared_tags": np.log1p(shared),
            "same_folder": np.array([o.folder == query.folder for o in others], dtype=float),
            "vote_sum": extra["votes_sum"][cand], "vote_max": extra["votes_max"][cand],
            "indegree": np.log1p(graph.indegree[cand]),
            "dense_z": _z(dense, cand), "lexical_z": _z(lexical, cand), "proj_z": _zc(proj),
            "vote_rel": extra["votes_sum"][cand] / max(float(extra["votes_sum"].max()), 1e-9),
        }
        return np.stack([cols[f] for f in FEATURES], axis=1)

    def query(self, i: int, graph: Graph, allowed: np.ndarray, include=()) -> tuple[np.ndarray, np.ndarray]:
        """(candidate indices, feature matrix) for lens note i; `include`: lens notes made
        candidates as well."""
        dense, raw, lexical = self.base_scores(i)
        cand, extra = self.candidates(i, graph, dense, lexical, allowed)
        if len(include):
            cand = np.union1d(cand, include).astype(np.int64)
        self.exact_at(i, cand, dense, raw)
        return cand, self.matrix(i, cand, graph, dense, raw, lexical, extra)


def _z(scores: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Candidates' scores as z-scores over all of the query's scores."""
    finite = scores[np.isfinite(scores)]
    return (scores[cand] - finite.mean()) / (finite.std() + 1e-9)


def _zc(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-9) if len(values) > 1 else values * 0


def lens_graph(index, view) -> Graph:
    """The vault's links between notes of this lens (source -> allowed candidate)."""
    src, dst = index.edges()
    local = np.full(len(index.notes), -1, dtype=np.int64)
    rows = list(view.position)
    local[rows] = [view.position[r] for r in rows]
    s, t = local[src], local[dst]
    keep = (s >= 0) & (t >= 0) & (s != t)
    s, t = s[keep], t[keep]
    keep = view.sources[s] & view.candidates[t]
    out: dict[int, set[int]] = {}
    for a, b in zip(s[keep].tolist(), t[keep].tolist()):
        out.setdefault(a, set()).add(b)
    return Graph(len(view.rows), out)


# -- training -------------------------------------------------------------------------
def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 100,
                 weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (features already scaled),
    each row's loss times `weight` (default 1)."""
    n, d = x.shape
    weight = np.ones(n) if weight is None else weight
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 1e-6
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (weight * (p - y)) + reg * w
        hess = (xb * (weight * p * (1 - p))[:, None]).T @ xb + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return w[:-1], float(w[-1])


def query_weights(ys: list[np.ndarray]) -> np.ndarray:
    """Row weights that make each query's links count as recall does: a query's rows
    weigh 1 / its number of links (so a note with 20 links does not outweigh 20 notes
    with one each), scaled to a mean of 1."""
    weight = np.concatenate([np.full(len(y), 1.0 / max(float(y.sum()), 1.0)) for y in ys])
    return weight * (len(weight) / weight.sum())


def fit_ranker(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic weights fitted with `query_weights` (the ranking), then its logit mapped
    by an unweighted one-feature fit (Platt scaling), so that probabilities stay
    calibrated over all pairs; the map is increasing, so the ranking is the same."""
    w, b = fit_logistic(x, y, weight=weight)
    z = x @ w + b
    a, c = fit_logistic(z[:, None], y, l2=1e-6)
    if a[0] <= 0:  # a map that would reverse the ranking: keep the weighted fit as it is
        return w, b
    return w * float(a[0]), b * float(a[0]) + c


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def nearest_candidates(view, sources, count: int = 20) -> dict[int, np.ndarray]:
    """Each source's `count` nearest candidates by centred cosine (batched, argpartition)."""
    cands = np.flatnonzero(view.candidates)
    out: dict[int, np.ndarray] = {}
    sources = np.unique(np.asarray(list(sources), dtype=np.int64))
    take = min(count, len(cands))
    for start in range(0, len(sources), 512):
        batch = sources[start:start + 512]
        sims = view.similarities(batch, cands)[0]
        if take == 0:
            break
        top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        for s, row in zip(batch.tolist(), np.take_along_axis(top, order, axis=1)):
            out[s] = cands[row]
    return out


def projection_sources(graph: Graph, seed: int = 0) -> list[int]:
    """The source notes whose links train the projection: all, or a seeded sample."""
    sources = sorted(graph.out)
    if len(sources) > MAX_PROJECTION_SOURCES:
        sources = sorted(random.Random(seed).sample(sources, MAX_PROJECTION_SOURCES))
    return sources


def train_projection(view, graph: Graph, asymmetric: bool, seed: int = 0,
                     epochs: int = 40, lr: float = 0.05, check=None,
                     nearest: dict[int, np.ndarray] | None = None,
                     sources: list[int] | None = None,
                     cov: np.ndarray | None = None,
                     axes: np.ndarray | None = None) -> Projection | None:
    """Fit Q, K (k x d) with the logistic loss on sigma(s * (Q v_a).(K v_b) + c):
    positives are linked pairs, negatives half the nearest unlinked, half random.
    Only the links of `sources` (default: `projection_sources`) that are in `graph`
    count; `nearest` (from `nearest_candidates`), `cov` (`covariance`) and `axes` (the
    start, `_principal_axes` of cov from this seed's random start) may be shared between
    calls on one view."""
    sources = projection_sources(graph, seed) if sources is None else sources
    pairs = [(s, t) for s in sources for t in sorted(graph.out.get(s, ()))]
    if len(pairs) < 20:
        return None
    rng = np.random.default_rng(seed)
    d = view.raw.shape[1]
    k = min(PROJ_DIM, d)
    start = rng.standard_normal((d, k))  # drawn in any case: the same draws follow
    q = _principal_axes(covariance(view) if cov is None else cov, start) if axes is None else axes
    key = q.copy()
    cands = np.flatnonzero(view.candidates)
    src = np.array([s for s, _ in pairs])
    pos = np.array([t for _, t in pairs])
    # hard negatives: among each source's 20 nearest candidates, one it does not link
    if nearest is None or not set(np.unique(src).tolist()) <= nearest.keys():
        nearest = nearest_candidates(view, src)
    hard = []
    for s in src:
        choices = [c for c in nearest[int(s)] if c != s and c not in graph.out.get(int(s), ())]
        hard.append(choices[rng.integers(len(choices))] if choices else rng.choice(cands))
    a = np.concatenate([src, src, src])
    b = np.concatenate([pos, np.array(hard), rng.choice(cands, size=len(src))])
    # Only the notes in a pair get a gradient: the queries' rows for Q, the others' for K.
    rows_a, a = np.unique(a, return_inverse=True)
    rows_b, b = np.unique(b, return_inverse=True)
    va, vb = view.centred_rows(rows_a), view.centred_rows(rows_b)
    y = np.concatenate([np.ones(len(src)), np.zeros(2 * len(src))]).astype(np.float32)
    scale, bias = 5.0, -2.0
    m_q, m_k = np.zeros_like(q), np.zeros_like(key)
    for _ in range(epochs):
        if check:
            check()
        uq, uk = va @ q.T, vb @ key.T             # each note projected once per epoch
        s = np.einsum("ij,ij->i", uq[a], uk[b])
        p = 1.0 / (1.0 + np.exp(-np.clip(scale * s + bias, -30, 30)))
        g = ((p - y) * scale / len(y)).astype(np.float32)
        ga = _sum_rows(a, g[:, None] * uk[b], len(rows_a))   # d loss / d uq, per note
        gb = _sum_rows(b, g[:, None] * uq[a], len(rows_b))
        grad_q, grad_k = ga.T @ va, gb.T @ vb
        if not asymmetric:
            grad_q = grad_k = grad_q + grad_k
        bias -= lr * 10 * float(np.sum(p - y) / len(y))
        m_q = 0.9 * m_q + grad_q
        m_k = 0.9 * m_k + grad_k
        q = q - lr * m_q
        key = q.copy() if not asymmetric else key - lr * m_k
    return Projection(q=q.astype(np.float32), k=key.astype(np.float32))


def covariance(view) -> np.ndarray:
    """(d, d) scatter matrix of the lens's centred vectors, summed in blocks of rows."""
    n, d = view.raw.shape
    total, cov = np.zeros(d), np.zeros((d, d))
    for start in range(0, n, 8192):
        block = view.centred_rows(np.arange(start, min(n, start + 8192)))
        total += block.sum(0, dtype=np.float64)
        cov += (block.T @ block).astype(np.float64)
    mu = total / max(n, 1)
    return cov - n * np.outer(mu, mu)


def _principal_axes(cov: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Top-k principal axes (k x d) of a scatter matrix by a few rounds of subspace
    iteration from `start` (d x k, random): a start where the projection behaves like
    centred cosine; LAPACK's eigh is slow here."""
    basis = np.linalg.qr(start)[0]
    for _ in range(4):
        basis = np.linalg.qr(cov @ basis)[0]
    return basis.T.astype(np.float32).copy()


def _sum_rows(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Rows of `values` summed by `index` into an (n, k) array (np.add.at, but fast):
    one bincount over the flattened (row, column) cells."""
    k = values.shape[1]
    cells = (index[:, None] * k + np.arange(k)).ravel()
    return np.bincount(cells, weights=values.ravel(), minlength=n * k).reshape(n, k).astype(np.float32)


def projector(view, graph: Graph, seed: int = 0, with_projection: bool = True, check=None):
    """`project(visible_graph) -> Projection | None`: the lens's projection trained on the
    links of `visible_graph`, every call sharing the work that depends on the lens only
    (source sample, nearest candidates, covariance); always None without projection."""
    if not with_projection:
        return lambda visible: None
    sources = projection_sources(graph, seed)
    nearest, cov = nearest_candidates(view, sources), covariance(view)
    d = view.raw.shape[1]
    axes = _principal_axes(cov, np.random.default_rng(seed).standard_normal((d, min(PROJ_DIM, d))))
    asymmetric = view.lens.source != view.lens.candidates
    return lambda visible: train_projection(view, visible, asymmetric, seed, check=check,
                                            nearest=nearest, sources=sources, cov=cov, axes=axes)


def training_set(index, view, graph: Graph, folds: int, seed: int, project,
                 check=None, texts=None) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Features and labels per fold, each fold's notes made to look new (`project`: from
    `projector`; `texts()`: every note's query text, see `train`)."""
    queries = sorted(graph.out)
    random.Random(seed).shuffle(queries)
    featured = set(queries[:MAX_TRAIN_QUERIES])  # the shuffle makes this a seeded sample
    xs, ys, fold_of = [], [], []
    features = PairFeatures(index, view)
    features.keep_texts(texts() if texts else None)
    for f in range(folds):
        fold = set(queries[f::folds])
        visible = graph.without(fold)
        features.projection = project(visible)
        ranked = sorted(fold & featured)
        for n, q in enumerate(ranked):
            if n % 256 == 0:
                features.prefetch(ranked[n:n + 256])  # bounded memory
            if check:
                check()
            cand, x = features.query(q, visible, view.candidates)
            if len(cand) == 0:
                continue
            xs.append(x)
            ys.append(np.isin(cand, list(graph.out[q])).astype(float))
            fold_of.append(f)
    return xs, ys, fold_of


def label_rows(index, view, graph: Graph, labels, project=lambda visible: None,
               check=None) -> tuple[np.ndarray, np.ndarray] | None:
    """Training rows of pairs a chat model judged (`lenslink label`): `labels` are
    (source path, candidate path, would link), `y` is 1 or 0. Pairs linked since, or no
    longer a source and a candidate of the lens, are left out; the labelled source notes
    are made to look new, as each fold's notes are (`project`: from `projector`). None
    when no label applies."""
    judged: dict[int, list[tuple[int, float]]] = {}
    for src, dst, label in labels:
        i = view.position.get(index.row.get(src, -1))
        j = view.position.get(index.row.get(dst, -1))
        if i is None or j is None or i == j or not view.sources[i] or not view.candidates[j] \
                or j in graph.out.get(i, ()):
            continue
        judged.setdefault(i, []).append((j, float(label)))
    if not judged:
        return None
    visible = graph.without(set(judged))
    features = PairFeatures(index, view, project(visible))
    xs, ys = [], []
    for i, pairs in sorted(judged.items()):
        if check:
            check()
        # among the query's usual candidates, so that the relative features mean the same
        cand, x = features.query(i, visible, view.candidates, include=[j for j, _ in pairs])
        xs.append(x[np.searchsorted(cand, [j for j, _ in pairs])])
        ys.append(np.array([y for _, y in pairs]))
    return np.vstack(xs), np.concatenate(ys)


def train(index, view, seed: int = 0, folds: int = FOLDS, with_projection: bool = True,
          check=None, labels=None, texts=None) -> Model | None:
    """Fit the ranker of one lens on the vault's links; None when links are too few.
    `check()`, called often, may raise to abandon training. `labels` (see `label_rows`)
    add training rows, never held out. `texts()` gives every note's query text by row
    (default: read from the store; lenses trained together may share one read).

    The report holds held-out log loss (before: the unsupervised fusion mapped by a
    one-feature fit; after: the ranker) and expected calibration error."""
    from .calibrate import expected_calibration_error

    graph = lens_graph(index, view)
    if len(graph.out) < MIN_LINKED_QUERIES:
        return None
    folds = min(folds, len(graph.out))
    project = projector(view, graph, seed, with_projection, check)
    xs, ys, fold_of = training_set(index, view, graph, folds, seed, project, check, texts)
    judged = label_rows(index, view, graph, labels, project, check) if labels else None
    if judged is not None:
        xs, ys, fold_of = xs + [judged[0]], ys + [judged[1]], fold_of + [-1]
    x, y, fold_of = np.vstack(xs), np.concatenate(ys), np.repeat(fold_of, [len(v) for v in ys])
    if y.sum() < 5:
        return None
    weight = query_weights(ys)
    if judged is not None:  # labels of many notes in one block: each row weighs 1
        weight[len(weight) - len(judged[1]):] = 1.0
    # held-out check: train on all folds but the last, score the last
    test = fold_of == folds - 1
    mean, std = x[~test].mean(0), x[~test].std(0) + 1e-6
    w, b = fit_ranker((x[~test] - mean) / std, y[~test], weight[~test])
    held = Model(mean, std, w, b, None)
    p_test = held.probability(x[test])
    base = FEATURES.index("dense"), FEATURES.index("lexical")
    fused = (0.5 * x[:, base[0]] + 0.5 * x[:, base[1]])[:, None]
    wb, bb = fit_logistic((fused[~test] - fused[~test].mean()) / fused[~test].std(), y[~test], l2=1e-3)
    p_base = 1 / (1 + np.exp(-(((fused[test] - fused[~test].mean()) / fused[~test].std()) @ wb + bb)))
    report = {"pairs": int(len(y)), "positives": int(y.sum()), "queries": len(graph.out),
              "heldout_log_loss": log_loss(p_test, y[test]) if test.any() else None,
              "heldout_log_loss_fusion": log_loss(p_base, y[test]) if test.any() else None,
              "heldout_ece": expected_calibration_error(p_test, y[test]) if test.any() else None}
    if judged is not None:
        report["labels"] = len(judged[1])
    mean, std = x.mean(0), x.std(0) + 1e-6
    w, b = fit_ranker((x - mean) / std, y, weight)
    proj = project(graph)
    report["weights"] = {f: round(float(v), 4) for f, v in zip(FEATURES, w)}
    return Model(mean=mean, std=std, weights=w, bias=b, projection=proj, report=report)


def model_to_blob(model: Model) -> tuple[dict, bytes]:
    """JSON-able parameters and a float32 blob of the projection."""
    params = {"features": list(FEATURES), "mean": model.mean.tolist(), "std": model.std.tolist(),
              "weights": model.weights.tolist(), "bias": model.bias, "report": model.report}
    blob = b""
    if model.projection is not None:
        params["projection_shape"] = list(model.projection.q.shape)
        blob = (np.ascontiguousarray(model.projection.q, dtype="<f4").tobytes()
                + np.ascontiguousarray(model.projection.k, dtype="<f4").tobytes())
    return params, blob


def model_from_blob(params: dict, blob: bytes) -> Model | None:
    if params.get("features") != list(FEATURES):
        return None  # trained by another version: retrain
    proj = None
    if params.get("projection_shape"):
        shape = tuple(params["projection_shape"])
        size = math.prod(shape)
        arr = np.frombuffer(blob, dtype="<f4")
        proj = Projection(q=arr[:size].reshape(shape), k=arr[size:2 * size].reshape(shape))
    return Model(np.array(params["mean"]), np.array(params["std"]), np.array(params["weights"]),
                 float(params["bias"]), proj, params.get("report", {}))
