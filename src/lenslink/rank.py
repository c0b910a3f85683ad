"""Rank related notes per lens: centred embeddings fused with lexical signals, calibrated.

Everything is read from the store once into numpy arrays (`VaultIndex.load`); a query
is a few matrix-vector products and an `argpartition`.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from . import calibrate, learn
from .errors import NotFound
from .lenses import Lens, NoteMeta, VaultConfig
from .lexical import Mentions, TfIdf
from .store import NoteRow, Store

# Fusion weights of the unsupervised ranking; chosen a priori (equal dense and lexical
# weight, the title bonus of the reference TF-IDF + title baseline), not tuned on a vault.
W_DENSE, W_LEXICAL, W_TITLE = 0.5, 0.5, 0.25
PASSAGE_CHARS = 240
NEGATIVES_PER_SOURCE = 20


@dataclass(frozen=True)
class Related:
    """One suggestion: a note, its calibrated score and why it was suggested."""
    path: str
    title: str
    score: float
    score_kind: str
    linked: bool
    raw: float
    cosine: float
    lexical: float
    mentioned: bool
    passage: str
    lens: str = ""
    signals: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict:
        return {"path": self.path, "title": self.title, "score": round(self.score, 4),
                "score_kind": self.score_kind, "linked": self.linked,
                "reason": {"lens": self.lens, "passage": self.passage,
                           "cosine": round(self.cosine, 4), "lexical": round(self.lexical, 4),
                           "title_mentioned": self.mentioned, "raw": round(self.raw, 4),
                           "signals": {k: round(v, 3) for k, v in self.signals}}}


@dataclass
class LensView:
    """One lens: note vectors (mean of chunk vectors), centred, plus filters."""
    lens: Lens
    rows: np.ndarray            # vault row of each lens note
    centred: np.ndarray         # (n, d) centred, L2-normalised note vectors
    raw: np.ndarray             # (n, d) L2-normalised note vectors (not centred)
    chunk_owner: np.ndarray     # lens-note index of each chunk
    chunk_vectors: np.ndarray   # (chunks, d) raw chunk vectors
    chunk_texts: list[str]
    sources: np.ndarray         # bool per lens note
    candidates: np.ndarray      # bool per lens note
    position: dict[int, int] = field(default_factory=dict)  # vault row -> lens-note index
    calibrator: calibrate.Calibrator = calibrate.Calibrator("percentile")
    model: learn.Model | None = None
    graph: learn.Graph | None = None
    features: learn.PairFeatures | None = None


class VaultIndex:
    """The in-memory ranking state of one vault."""

    def __init__(self, config: VaultConfig, notes: list[NoteRow], links: dict[str, list[str]],
                 lex_texts: dict[str, tuple[str, str]], lens_data: dict[str, tuple],
                 models: dict[str, learn.Model] | None = None):
        self.config = config
        self.notes = notes
        self.row = {n.path: i for i, n in enumerate(notes)}
        self.links = {src: set(dst) for src, dst in links.items()}
        texts = [lex_texts.get(n.path, ("", "")) for n in notes]
        self.texts = [query for _, query in texts]  # what each note searches with
        self.tfidf = TfIdf([doc for doc, _ in texts])
        self.mentions = Mentions([[n.title, *n.aliases] for n in notes])
        self.views = {lens.name: self._view(lens, *lens_data[lens.name]) for lens in config.lenses}
        for view in self.views.values():
            view.model = (models or {}).get(view.lens.name)
            if view.model is None:
                view.calibrator = self._calibrate(view)

    @classmethod
    def load(cls, store: Store, config: VaultConfig, embedder_id: str) -> "VaultIndex":
        data = {lens.name: store.lens_vectors(embedder_id, lens.name) for lens in config.lenses}
        models = {}
        for name, (signature, params, blob, _) in store.models(embedder_id).items():
            lens = next((l for l in config.lenses if l.name == name), None)
            if lens is not None and lens.signature == signature:
                model = learn.model_from_blob(params, blob)
                if model is not None:
                    models[name] = model
        return cls(config, store.notes(), store.links(), store.lex_texts(), data, models)

    def pair_features(self, view: LensView) -> tuple[learn.PairFeatures, learn.Graph]:
        """The learned ranker's feature builder and link graph for a lens (built once)."""
        if view.features is None:
            view.graph = learn.lens_graph(self, view)
            view.features = learn.PairFeatures(self, view, view.model.projection if view.model else None)
        return view.features, view.graph

    def _view(self, lens: Lens, paths, chunk_nos, texts, matrix) -> LensView:
        owners_path = sorted(set(paths))
        index_of = {p: i for i, p in enumerate(owners_path)}
        owner = np.array([index_of[p] for p in paths], dtype=np.int64)
        rows = np.array([self.row[p] for p in owners_path], dtype=np.int64)
        d = matrix.shape[1] if matrix.size else 0
        if len(owners_path):
            sums = np.zeros((len(owners_path), d), dtype=np.float64)
            np.add.at(sums, owner, matrix)
            vecs = sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)
            centred = vecs - vecs.mean(axis=0)
            centred /= np.linalg.norm(centred, axis=1, keepdims=True).clip(1e-12)
        else:
            vecs = centred = np.zeros((0, d))
        metas = [self._meta(self.notes[r]) for r in rows]
        return LensView(lens=lens, rows=rows, centred=centred.astype(np.float32),
                        raw=vecs.astype(np.float32),
                        chunk_owner=owner, chunk_vectors=matrix, chunk_texts=list(texts),
                        sources=np.array([lens.source.matches(m) for m in metas], dtype=bool),
                        candidates=np.array([lens.candidates.matches(m) for m in metas], dtype=bool),
                        position={int(r): i for i, r in enumerate(rows)})

    @staticmethod
    def _meta(n: NoteRow) -> NoteMeta:
        return NoteMeta(path=n.path, tags=n.tags, frontmatter=n.frontmatter, is_daily=n.is_daily)

    # -- scoring ------------------------------------------------------------------
    def raw_scores(self, view: LensView, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(fused, centred cosine, tf-idf, title mentioned) of lens note i to every lens note."""
        cosine = view.centred @ view.centred[i]
        lexical = self.lexical(int(view.rows[i]))[view.rows]
        mentioned_rows = self.mentions.mentioned(self.texts[int(view.rows[i])])
        mentioned = np.isin(view.rows, list(mentioned_rows)).astype(np.float32)
        if "{body}" in view.lens.template:
            fused = W_DENSE * cosine + W_LEXICAL * lexical + W_TITLE * mentioned
        else:  # the lens looks at chosen fields only: the note's words are beside the point
            fused = cosine
        return fused, cosine, lexical, mentioned

    def lexical(self, row: int) -> np.ndarray:
        """TF-IDF cosine of a note's query text (links removed) to every note's text."""
        return self.tfidf.similarities_to(self.texts[row])

    def _calibrate(self, view: LensView) -> calibrate.Calibrator:
        """Fit score -> link likelihood on the vault's links under this lens."""
        rng, draw = random.Random(0), np.random.default_rng(0)
        pos, neg, background = [], [], []
        sources = np.flatnonzero(view.sources)
        negative_pairs = 0
        picked = rng.sample(list(sources), min(len(sources), 300))
        for i in picked:
            path = self.notes[int(view.rows[i])].path
            fused = self.raw_scores(view, int(i))[0]
            linked = {view.position.get(self.row.get(d, -1)) for d in self.links.get(path, ())}
            mask = view.candidates.copy()
            mask[i] = False
            mask[[c for c in linked if c is not None]] = False
            others = np.flatnonzero(mask)
            negative_pairs += len(others)
            pos += [fused[c] for c in linked if c is not None and view.candidates[c] and c != i]
            sample = others[draw.choice(len(others), min(len(others), NEGATIVES_PER_SOURCE),
                                        replace=False)] if len(others) else []
            neg += [fused[c] for c in sample]
            background += [fused[c] for c in sample]
        cal = calibrate.fit(np.array(pos), np.array(neg), np.array(background))
        if cal.kind == "probability" and neg:
            # Negatives were sampled; move the intercept back to the true share of them.
            cal = calibrate.Calibrator("probability", a=cal.a,
                                       b=cal.b + math.log(len(neg) / max(negative_pairs, 1)))
        return cal

    def related(self, path: str, lens_name: str | None = None, top_k: int | None = None,
                min_score: float | None = None) -> list[Related]:
        """The note's related notes under a lens, best first (ties broken by path)."""
        view = self.views[self.config.lens(lens_name).name]
        if path not in self.row:
            raise NotFound(f"note {path!r} is not in the index; run `lenslink index` first")
        i = view.position.get(self.row[path])
        if i is None or not view.sources[i]:
            return []
        k = top_k or view.lens.top_k
        floor = view.lens.min_score if min_score is None else min_score
        if view.model is not None:
            return self._related_learned(view, path, i, k, floor)
        fused, cosine, lexical, mentioned = self.raw_scores(view, i)
        allowed = view.candidates.copy()
        allowed[i] = False
        scores = np.where(allowed, fused, -np.inf)
        n_ok = int(allowed.sum())
        if n_ok == 0:
            return []
        if n_ok > k:
            kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
            above, tied = np.flatnonzero(scores > kth), np.flatnonzero(scores == kth)
            # Lens notes are in path order, so the ties kept at the cut are the first paths.
            top = np.concatenate([above, tied[:k - len(above)]])
        else:
            top = np.flatnonzero(allowed)
        probs = view.calibrator(fused[top])
        linked = self.links.get(path, set())
        out = []
        for j, p in zip(top, probs):
            note = self.notes[int(view.rows[j])]
            if p < floor:
                continue
            out.append(Related(path=note.path, title=note.title, score=float(p),
                               score_kind=view.calibrator.kind, linked=note.path in linked,
                               raw=float(fused[j]), cosine=float(cosine[j]),
                               lexical=float(lexical[j]), mentioned=bool(mentioned[j]),
                               passage=self._passage(view, i, int(j)), lens=view.lens.name))
        out.sort(key=lambda r: (-r.raw, r.path))
        return out

    def _related_learned(self, view: LensView, path: str, i: int, k: int, floor: float) -> list[Related]:
        features, graph = self.pair_features(view)
        cand, x = features.query(i, graph, view.candidates)
        if len(cand) == 0:
            return []
        probs = view.model.probability(x)
        order = sorted(range(len(cand)), key=lambda j: (-probs[j], self.notes[int(view.rows[cand[j]])].path))
        linked = self.links.get(path, set())
        col = {f: learn.FEATURES.index(f) for f in ("dense", "lexical", "mention")}
        out = []
        for j in order[:k]:
            if probs[j] < floor:
                continue
            note = self.notes[int(view.rows[cand[j]])]
            contrib = view.model.contributions(x[j])
            top = sorted(zip(learn.FEATURES, contrib), key=lambda kv: -kv[1])[:3]
            out.append(Related(path=note.path, title=note.title, score=float(probs[j]),
                               score_kind="probability", linked=note.path in linked,
                               raw=float(probs[j]), cosine=float(x[j, col["dense"]]),
                               lexical=float(x[j, col["lexical"]]),
                               mentioned=bool(x[j, col["mention"]]),
                               passage=self._passage(view, i, int(cand[j])), lens=view.lens.name,
                               signals=tuple((f, float(c)) for f, c in top)))
        return out

    def _passage(self, view: LensView, query: int, candidate: int) -> str:
        """The candidate's chunk closest to the query note (the passage that matched)."""
        chunks = np.flatnonzero(view.chunk_owner == candidate)
        if len(chunks) == 0:
            return ""
        q = view.chunk_vectors[view.chunk_owner == query].mean(axis=0)
        best = chunks[int(np.argmax(view.chunk_vectors[chunks] @ q))]
        text = " ".join(view.chunk_texts[best].split())
        return text if len(text) <= PASSAGE_CHARS else text[:PASSAGE_CHARS - 1] + "\u2026"

    def lens_notes(self, lens_name: str) -> list[str]:
        """Paths the lens applies to as a source (what `related --all` iterates)."""
        view = self.views[lens_name]
        return [self.notes[int(view.rows[i])].path for i in np.flatnonzero(view.sources)]
