"""Rank related notes per lens: centred embeddings fused with lexical signals, calibrated.

Everything is read from the store once into numpy arrays (`VaultIndex.load`); a query
is a few matrix-vector products and an `argpartition`. After a few notes changed,
`VaultIndex.updated` makes the next snapshot from this one and the changed notes only.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import math
import random
import re
import sys
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

import numpy as np

from . import calibrate, learn, writeback
from .errors import NotFound
from .lenses import Lens, NoteMeta, VaultConfig
from .lexical import Mentions, TfIdf, matchable
from .store import NoteRow, Reader, Store

# Fusion weights of the unsupervised ranking; chosen a priori (equal dense and lexical
# weight, the title bonus of the reference TF-IDF + title baseline), not tuned on a vault.
W_DENSE, W_LEXICAL, W_TITLE = 0.5, 0.5, 0.25
PASSAGE_CHARS = 240
NEGATIVES_PER_SOURCE = 20
MENTION_CACHE = 4096
WORD_CHAR = re.compile(r"\w")
# Large lenses keep a sketch of their centred vectors: their projection on the lens's
# SKETCH_DIM principal axes. A query's first pass scores every note with the sketch's
# cosine (a sixth of the memory read); the SHORTLIST best by that fused score are
# rescored with the exact cosine. On 100,000 synthetic notes and on lesleylai-garden
# (MiniLM) the shortlist held every one of the exact top 10 (docs/performance.md).
SKETCH_MIN_NOTES = 5000
SKETCH_DIM = 64
SHORTLIST = 1000


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


class Card(NamedTuple):
    """What the ranking keeps of a note (the store has the rest)."""
    path: str
    title: str
    folder: str
    tags: tuple[str, ...]
    aliases: tuple[str, ...]
    opted_out: bool
    is_daily: bool


def _card(n: NoteRow) -> Card:
    """The card of a note as the store knows it."""
    return _new_card(n.path, n.title, n.folder, n.tags, n.aliases, n.opted_out, n.is_daily)


def _new_card(path: str, title: str, folder: str, tags: tuple[str, ...], aliases: tuple[str, ...],
              opted_out: bool, is_daily: bool) -> Card:
    """Paths, folders and tags interned: links and other cards then hold the same strings."""
    return Card(sys.intern(path), title, sys.intern(folder), tuple(sys.intern(t) for t in tags),
                aliases, opted_out, is_daily)


class Positions(MutableMapping):
    """Vault row -> lens-note index, used as a dict, held in an int32 array (-1: not in
    the lens): a dict of 100,000 ints took 10 MB per lens, this takes 0.4."""

    def __init__(self, rows=()):
        rows = np.asarray(rows, dtype=np.int64)
        self._at = np.full(int(rows.max()) + 1 if len(rows) else 0, -1, dtype=np.int32)
        self._at[rows] = np.arange(len(rows), dtype=np.int32)
        self._n = len(rows)

    def __getitem__(self, row) -> int:
        row = int(row)
        if 0 <= row < len(self._at) and self._at[row] >= 0:
            return int(self._at[row])
        raise KeyError(row)

    def __setitem__(self, row, index) -> None:
        row = int(row)
        if row < 0:
            raise KeyError(row)
        if row >= len(self._at):
            grown = np.full(max(row + 1, len(self._at) + len(self._at) // 4 + 16), -1, dtype=np.int32)
            grown[:len(self._at)] = self._at
            self._at = grown
        self._n += int(self._at[row] < 0)
        self._at[row] = index

    def __delitem__(self, row) -> None:
        self[row]  # KeyError if absent
        self._at[int(row)] = -1
        self._n -= 1

    def __iter__(self):
        return iter(np.flatnonzero(self._at >= 0).tolist())

    def __len__(self) -> int:
        return self._n

    def copy(self) -> "Positions":
        new = Positions()
        new._at, new._n = self._at.copy(), self._n
        return new


@dataclass
class LensView:
    """One lens: note vectors (mean of chunk vectors) plus filters.

    Centred cosine needs no second matrix: with unit vectors r, the mean m and
    s = 1/|r - m|, cos(r_i - m, r_j - m) = (r_i.r_j - r_i.m - r_j.m + m.m) s_i s_j, so
    one product with the raw vectors gives raw and centred cosine (`similarities`).

    A note that left the lens (deleted, or no longer matching) keeps its index with
    both flags false and zero vectors until the next full load."""
    lens: Lens
    rows: np.ndarray            # vault row of each lens note
    raw: np.ndarray             # (n, d) L2-normalised note vectors (not centred)
    centring: np.ndarray        # (n, 2) float32 per note: r.m and 1/|r - m|
    sources: np.ndarray         # bool per lens note
    candidates: np.ndarray      # bool per lens note
    position: Positions = field(default_factory=Positions)  # vault row -> lens-note index
    mean: np.ndarray | None = None  # m, what the vectors are centred by
    sketch: np.ndarray | None = None  # (n, SKETCH_DIM) centred unit vectors . basis
    basis: np.ndarray | None = None   # (d, SKETCH_DIM) principal axes; None: no sketch
    calibrator: calibrate.Calibrator = calibrate.Calibrator("percentile")
    model: learn.Model | None = None
    graph: learn.Graph | None = None
    features: learn.PairFeatures | None = None

    def similarities(self, i, cols=None) -> tuple[np.ndarray, np.ndarray]:
        """(centred cosine, raw cosine) of lens note i (or of the notes of an index
        array: one row each) to every lens note, or to the notes `cols`."""
        raw, centring = (self.raw, self.centring) if cols is None else (self.raw[cols], self.centring[cols])
        dots = self.raw[i] @ raw.T
        mine = self.centring[i]
        mm = np.float32(self.mean @ self.mean) if self.mean is not None else np.float32(0)
        centred = (dots - mine[..., 0:1] - centring[:, 0] + mm) * mine[..., 1:2] * centring[:, 1]
        return centred, dots

    def shortlist(self, i: int, rest: np.ndarray, allowed: np.ndarray, size: int) -> np.ndarray | None:
        """The `size` allowed lens notes best by W_DENSE * the sketch's cosine to note i
        + `rest` (ascending), or None when there is no sketch or no more allowed notes."""
        if self.sketch is None or int(allowed.sum()) <= size:
            return None
        first = np.where(allowed, W_DENSE * self.sketched(i) + rest, -np.inf)
        return np.sort(np.argpartition(-first, size - 1)[:size])

    def sketched(self, i: int) -> np.ndarray:
        """The sketch's (approximate) centred cosine of lens note i to every lens note."""
        return self.sketch @ self.sketch[i]

    def centred_rows(self, idx) -> np.ndarray:
        """Centred, L2-normalised vectors of lens notes `idx` (float32)."""
        mean = np.zeros(self.raw.shape[1], np.float32) if self.mean is None else self.mean.astype(np.float32)
        return (self.raw[idx] - mean) * self.centring[idx, 1:2]


class VaultIndex:
    """The in-memory ranking state of one vault. Texts are not kept: a query reads its
    note's query text and the passages it shows from the store (`reader`)."""

    def __init__(self, config: VaultConfig, store: Store, embedder_id: str,
                 models: dict[str, learn.Model] | None = None, reader: Reader | None = None):
        """The ranking built from the store (`load`), read one part at a time: the notes,
        each lens's vectors in batches (each note's vector made and its chunks dropped),
        the links, then the texts (each tokenised and dropped). At 100,000 notes, holding
        all of them at once took 3 GB."""
        self.config = config
        self.notes: list[Card] = []
        self.reader = reader
        self.embedder_id = embedder_id
        self.mapped = None  # the snapshot file this index's arrays are mapped from, if any
        # which notes each lens's filters take, by vault row: (sources, candidates)
        matches: dict[str, tuple[list[bool], list[bool]]] = {lens.name: ([], []) for lens in config.lenses}
        for path, title, folder, opted_out, daily, tags, aliases, frontmatter in store.note_cards():
            self.notes.append(_new_card(path, title, folder, tags, aliases, opted_out, daily))
            meta = NoteMeta(path=path, tags=tags, frontmatter=frontmatter, is_daily=daily)
            for lens in config.lenses:
                sources, candidates = matches[lens.name]
                sources.append(lens.source.matches(meta))
                candidates.append(lens.candidates.matches(meta))
        self.row = {n.path: i for i, n in enumerate(self.notes)}  # `_new_card` interned the paths
        # the vectors first, while little else is held: a lens's float64 note vectors are
        # the largest thing a load makes
        views = self._views(store, {name: (np.array(s, dtype=bool), np.array(c, dtype=bool))
                                    for name, (s, c) in matches.items()})
        del matches
        self.links = self._links((src, (dst for _, dst in pairs))
                                 for src, pairs in itertools.groupby(store.each_link(), key=itemgetter(0)))
        # a note stored after the notes were read is left out (it shows as changed since
        # this load: see snapshot.facts)
        self.tfidf = TfIdf.of_docs(len(self.notes), ((self.row[p], text) for p, text in store.each_lex_text()
                                                     if p in self.row))
        self.mentions = Mentions([[n.title, *n.aliases] for n in self.notes])
        self._mentioned: dict[int, frozenset[int]] = {}  # row -> rows its text mentions
        self._names: dict[str, int] | None = None
        self._edges: tuple[np.ndarray, np.ndarray] | None = None
        self.patched = 0  # notes re-read by `updated` since the full load
        self.views: dict[str, LensView] = views
        for view in self.views.values():
            # every lens is calibrated, trained or not: a snapshot serves with or without
            # the rankers stored at the time (`with_models`)
            view.calibrator = self._calibrate(view)
            view.model = (models or {}).get(view.lens.name)

    @classmethod
    def load(cls, store: Store, config: VaultConfig, embedder_id: str,
             reader: Reader | None = None) -> "VaultIndex":
        """The ranking built from the store, with its rankers; texts are read through
        `reader` (default: one of its own on the store's file)."""
        return cls(config, store, embedder_id, cls.stored_models(store, config, embedder_id),
                   reader or Reader(store.path))

    @staticmethod
    def stored_models(store: Store, config: VaultConfig, embedder_id: str) -> dict[str, learn.Model]:
        """The stored rankers of these lenses (as they are now) and this embedder."""
        models = {}
        for name, (signature, params, blob, _) in store.models(embedder_id).items():
            lens = next((l for l in config.lenses if l.name == name), None)
            if lens is not None and lens.signature == signature:
                model = learn.model_from_blob(params, blob)
                if model is not None:
                    models[name] = model
        return models

    def with_models(self, models: dict[str, learn.Model]) -> "VaultIndex":
        """This snapshot with these rankers (lenses without one rank unsupervised)."""
        new = copy.copy(self)
        new.views = {name: v if v.model is models.get(name) else
                     dataclasses.replace(v, model=models.get(name), graph=None, features=None)
                     for name, v in self.views.items()}
        return new

    def without_caches(self) -> "VaultIndex":
        """A copy without per-query caches and rankers (what is saved to disk: rankers
        are stored apart and change without the notes)."""
        new = copy.copy(self)
        new._mentioned, new._names, new._edges, new.mapped = {}, None, None, None
        new.views = {name: dataclasses.replace(v, model=None, graph=None, features=None)
                     for name, v in self.views.items()}
        return new

    def with_config(self, config: VaultConfig) -> "VaultIndex":
        """This snapshot under `config` (same lenses and texts; e.g. another top_k)."""
        new = copy.copy(self)
        new.config = config
        new.views = {name: dataclasses.replace(v, lens=config.lens(name))
                     for name, v in self.views.items()}
        return new

    def pair_features(self, view: LensView) -> tuple[learn.PairFeatures, learn.Graph]:
        """The learned ranker's feature builder and link graph for a lens (built once)."""
        if view.features is None:
            if view.graph is None:
                view.graph = learn.lens_graph(self, view)
            view.features = learn.PairFeatures(self, view, view.model.projection if view.model else None)
        return view.features, view.graph

    def _views(self, store: Store, matches: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, LensView]:
        """Every lens's view from its chunks' vectors; `matches`: which vault rows each
        lens's filters take (sources, candidates)."""
        views: dict[str, LensView] = {}
        digests: dict[str, str] = {}  # lens -> a digest of its chunks (paths, numbers, text hashes)
        for lens in self.config.lenses:
            sources, candidates = matches[lens.name]
            # Lenses that embed the same texts (same template, other filters: topic and
            # daily by default) share their arrays: a third less memory at 100,000 notes.
            # Their chunks are compared first, so the vectors are read for one of them.
            twin = digest = None
            if views:
                digest = self._chunks_digest(store.lens_text_keys(self.embedder_id, lens.name))
                twin = next((views[name] for name in views if digests[name] == digest), None)
            if twin is not None:
                views[lens.name] = dataclasses.replace(
                    twin, lens=lens, calibrator=calibrate.Calibrator("percentile"), model=None, graph=None,
                    features=None, sources=sources[twin.rows], candidates=candidates[twin.rows])
            else:
                views[lens.name], digest = self._view(
                    lens, store.lens_vector_batches(self.embedder_id, lens.name), sources, candidates)
            digests[lens.name] = digest
        return views

    def _view(self, lens: Lens, batches, sources: np.ndarray, candidates: np.ndarray) -> tuple[LensView, str]:
        """A lens's notes from its chunks' batches (`Store.lens_vector_batches`: in (path,
        chunk) order, a note's chunks in one batch), and a digest of those chunks;
        `sources`, `candidates`: which vault rows the lens's filters take."""
        digest = hashlib.sha256()
        room = len(self.notes)  # a lens has at most one vector per note
        rows = np.empty(room, dtype=np.int64)
        # float64 note vectors, row after row (their mean and centring are computed from
        # them as a whole, as they always were); rows a lens does not fill are never
        # touched, so they take no memory
        buffer, d, count = None, 0, 0
        for paths, numbers, hashes, matrix in batches:
            known = [k for k, p in enumerate(paths) if p in self.row]
            if len(known) < len(paths):  # notes stored after the notes were read: left out
                paths, numbers, hashes = ([x[k] for k in known] for x in (paths, numbers, hashes))
                matrix = matrix[known]
            if not paths:
                continue
            digest.update(_chunk_keys(zip(paths, numbers, hashes)))
            starts = [k for k in range(len(paths)) if k == 0 or paths[k] != paths[k - 1]]
            if buffer is None:
                d = matrix.shape[1]
                buffer = np.empty(room * d)
            end = count + len(starts)
            buffer[count * d:end * d] = _note_vectors(matrix, starts).ravel()
            rows[count:end] = [self.row[paths[k]] for k in starts]
            count = end
        rows = rows[:count].copy()
        if count:
            vecs = buffer[:count * d].reshape(count, d)
            mean = vecs.mean(axis=0)
            centring = _centring(vecs, mean)
            del vecs
            raw = _narrowed(buffer, count, d)
        else:
            raw, centring, mean = np.zeros((0, 0), dtype=np.float32), np.zeros((0, 2), dtype=np.float32), np.zeros(0)
        del buffer
        view = LensView(lens=lens, rows=rows, raw=raw, centring=centring, sources=sources[rows],
                        candidates=candidates[rows], position=Positions(rows), mean=mean)
        if count >= SKETCH_MIN_NOTES:
            view.basis = _sketch_axes(view)
            view.sketch = _sketch(view, np.arange(count))
        return view, digest.hexdigest()

    def _chunks_digest(self, keys) -> str:
        """The digest `_view` makes of these chunks' (path, chunk number, text hash), of
        the notes this index holds."""
        digest = hashlib.sha256()
        batch: list[tuple[str, int, str]] = []
        for key in keys:
            if key[0] in self.row:
                batch.append(key)
                if len(batch) == 8192:
                    digest.update(_chunk_keys(batch))
                    batch = []
        digest.update(_chunk_keys(batch))
        return digest.hexdigest()

    # -- incremental update -------------------------------------------------------
    def updated(self, store: Store, embedder_id: str, paths: list[str]) -> "VaultIndex":
        """The next snapshot: this one with `paths` (new, changed or deleted notes)
        re-read from the store. This snapshot is not changed, except that a changed
        note's vector rows are overwritten in place (readers see the old or the new
        vector); vocabulary, idf, centring means and calibration stay those of the last
        full load (`load` again after many changes)."""
        new = copy.copy(self)
        fresh = {r.path: r for r in store.notes(paths)}
        gone = sorted(p for p in set(paths) if p not in fresh and p in self.row)
        added = sorted(p for p in fresh if p not in self.row)
        new.notes, new.row = list(self.notes), dict(self.row)
        for p in gone:
            del new.row[p]
        for p in added:
            new.row[sys.intern(p)] = len(new.notes)
            new.notes.append(_card(fresh[p]))
        names, docs = {}, {}
        for p, note in fresh.items():
            r = new.row[p]
            old = self.notes[r] if p in self.row else None
            if old is None or (old.title, old.aliases) != (note.title, note.aliases):
                names[r] = [note.title, *note.aliases]
            new.notes[r] = _card(note)
        for p in gone:
            names[self.row[p]], docs[self.row[p]] = [], ""
        for p, (doc, _) in store.lex_texts(fresh).items():
            docs[new.row[p]] = doc
        new.tfidf = self.tfidf.with_docs(docs)
        touched = {new.row[p] for p in fresh} | {self.row[p] for p in gone}
        new.mentions = self.mentions.with_names(names) if names else self.mentions
        # a copy first: request threads add to the cache meanwhile
        new._mentioned = {} if names else {r: m for r, m in dict(self._mentioned).items()
                                           if r not in touched}
        if added or gone:  # what any link resolves to may have changed
            new.links = new._links(store.links().items())
        else:
            new.links = dict(self.links)
            for p in fresh:
                new.links.pop(p, None)
            new.links.update(new._links(store.links(fresh).items()))
        # file names change only with added or removed notes; links only with edits
        new._names = self._names if not (added or gone) else None
        new._edges = self._edges if not (added or gone) and new.links == self.links else None
        same_graph = new._edges is not None  # no note added or removed, no link changed
        new.views, seen = {}, {}
        for name, view in self.views.items():
            data = store.lens_vectors(embedder_id, name, fresh, texts=False)
            # shared arrays are views of one buffer (each update slices it anew)
            buffer = view.raw.ctypes.data if view.raw.size else id(view.raw)
            twin = seen.get(buffer)
            if twin is None:
                seen[buffer] = (data, name)
                new.views[name] = new._patch_view(view, data, fresh, touched, same_graph)
            elif _same_texts(twin[0], data):
                # the same chunks as a lens patched before it (topic and daily by default):
                # its patched arrays, shared (the rows are written again, with the same values)
                done = new.views[twin[1]]
                shared = dataclasses.replace(view, raw=done.raw, centring=done.centring, sketch=done.sketch)
                new.views[name] = new._patch_view(shared, data, fresh, touched, same_graph)
            else:  # their chunks of these notes differ from now on: its own copy
                new.views[name] = new._patch_view(view, data, fresh, touched, same_graph, copy_arrays=True)
        new.patched = self.patched + len(touched)
        return new

    def _patch_view(self, view: LensView, data, fresh: dict[str, NoteRow], touched: set[int],
                    same_graph: bool = False, copy_arrays: bool = False) -> LensView:
        """A copy of `view` with the chunks of the `touched` vault rows replaced (`fresh`:
        the notes re-read; its link graph kept when `same_graph` and no note joined or
        left the lens)."""
        paths, _, _, matrix = data
        chunks: dict[int, list[int]] = {}
        for k, p in enumerate(paths):
            chunks.setdefault(self.row[p], []).append(k)
        position = view.position.copy()
        appended = [r for r in sorted(chunks) if r not in position]
        n = len(view.rows)
        for k, r in enumerate(appended):
            position[r] = n + k
        size = n + len(appended)
        d = view.raw.shape[1] if view.raw.ndim == 2 and view.raw.shape[1] else (matrix.shape[1] if matrix.size else 0)
        raw, centring = (_grown(a.copy() if copy_arrays else a, size, w)
                         for a, w in ((view.raw, d), (view.centring, 2)))
        sketch = None if view.sketch is None else \
            _grown(view.sketch.copy() if copy_arrays else view.sketch, size, view.sketch.shape[1])
        sources = np.concatenate([view.sources, np.zeros(len(appended), dtype=bool)])
        candidates = np.concatenate([view.candidates, np.zeros(len(appended), dtype=bool)])
        rows = np.concatenate([view.rows, np.array(appended, dtype=np.int64)])
        mean = view.mean if view.mean is not None and len(view.mean) == d else np.zeros(d)
        for r in touched:
            i = position.get(r)
            if i is None:
                continue
            if r not in chunks:  # gone, or no longer in this lens
                del position[r]
                raw[i] = centring[i] = 0.0
                if sketch is not None:
                    sketch[i] = 0.0
                sources[i] = candidates[i] = False
                continue
            vec = _note_vectors(matrix[chunks[r]], [0])  # as a full load computes it, to the bit
            raw[i] = vec[0]
            centring[i] = _centring(vec, mean)[0]
            meta = self._meta(fresh[self.notes[r].path])
            sources[i] = view.lens.source.matches(meta)
            candidates[i] = view.lens.candidates.matches(meta)
        keep = same_graph and not appended and len(position) == len(view.position) and \
            np.array_equal(sources, view.sources) and np.array_equal(candidates, view.candidates)
        new = dataclasses.replace(view, rows=rows, raw=raw, centring=centring, sketch=sketch, sources=sources,
                                  candidates=candidates, position=position, mean=mean,
                                  graph=view.graph if keep else None, features=None)
        if sketch is not None:  # the rows written above (zeros for the notes that left)
            written = np.array([position[r] for r in sorted(touched) if r in chunks and r in position],
                               dtype=np.int64)
            sketch[written] = _sketch(new, written)
        return new

    @staticmethod
    def _links(links: Iterable[tuple[str, Iterable[str]]]) -> dict[str, tuple[str, ...]]:
        """Links, (source, targets) by source, as tuples of interned paths, the strings the
        cards hold (a set and a copy of each path per link were a tenth of the memory at
        100,000 notes)."""
        return {sys.intern(src): tuple(sorted({sys.intern(d) for d in dst})) for src, dst in links}

    @staticmethod
    def _meta(n: NoteRow) -> NoteMeta:
        return NoteMeta(path=n.path, tags=n.tags, frontmatter=n.frontmatter, is_daily=n.is_daily)

    # -- scoring ------------------------------------------------------------------
    def raw_scores(self, view: LensView, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(fused, centred cosine, tf-idf, title mentioned) of lens note i to every lens note."""
        return self.scores(view, i)[1:]

    def scores(self, view: LensView, i: int, allowed: np.ndarray | None = None, shortlist: int = 0):
        """(columns, fused, centred cosine, tf-idf, title mentioned) of lens note i to the
        lens notes `columns`: every one (None), or with `allowed` and a sketch, the
        max(SHORTLIST, `shortlist`) allowed notes best by the sketch's first pass
        (`LensView.shortlist`)."""
        row = int(view.rows[i])
        text = self.query_texts([row])[0]
        lexical = self.lexical(row, text)[view.rows]
        mentioned = np.isin(view.rows, list(self.mentioned_rows(row, text))).astype(np.float32)
        body = "{body}" in view.lens.template  # else the lens looks at chosen fields only:
        rest = W_LEXICAL * lexical + W_TITLE * mentioned  # the note's words are beside the point
        cols = None if allowed is None else view.shortlist(i, rest if body else np.zeros(len(rest), np.float32),
                                                          allowed, max(SHORTLIST, shortlist))
        if cols is not None:
            lexical, mentioned, rest = lexical[cols], mentioned[cols], rest[cols]
        cosine = view.similarities(i, cols)[0]
        fused = W_DENSE * cosine + rest if body else cosine
        return cols, fused, cosine, lexical, mentioned

    def name_counts(self) -> dict[str, int]:
        """How many notes share each file name (for link formatting; built once)."""
        if self._names is None:
            self._names = writeback.count_names(self.row)
        return self._names

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(source rows, target rows) of every link between notes (built once)."""
        if self._edges is None:
            row = self.row
            pairs = [(row[s], row[d]) for s, ds in self.links.items() if s in row
                     for d in ds if d in row]
            arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
            self._edges = (arr[:, 0], arr[:, 1])
        return self._edges

    def query_texts(self, rows) -> list[str]:
        """The texts these notes search with (links removed), read from the store; ''
        for a note the store no longer has."""
        paths = [self.notes[int(r)].path for r in rows]
        with self.reader.store() as store:
            found = store.query_texts(paths)
        return [found.get(p, "") for p in paths]

    def all_query_texts(self) -> list[str]:
        """Every note's query text, by row (training reads them all at once)."""
        with self.reader.store() as store:
            found = store.query_texts()
        return [found.get(n.path, "") for n in self.notes]

    def mentioned_rows(self, row: int, text: str | None = None) -> frozenset[int]:
        """Vault rows of the notes whose title or alias a note's text mentions (the last
        MENTION_CACHE notes asked for are cached)."""
        found = self._mentioned.get(row)
        if found is None:
            if len(self._mentioned) >= MENTION_CACHE:
                self._mentioned.clear()
            text = self.query_texts([row])[0] if text is None else text
            found = self._mentioned[row] = frozenset(self.mentions.mentioned(text) - {row})
        return found

    def mentioning(self, rows, target: int, texts: list[str] | None = None) -> np.ndarray:
        """Whether each of these notes' texts mentions the title or an alias of note
        `target` (the test of `mentioned_rows`, for these pairs: no scan for every name);
        `texts`: every note's query text by row (default: read these from the store)."""
        note = self.notes[target]
        names = sorted(matchable((note.title, *note.aliases)))
        out = np.zeros(len(rows), dtype=bool)
        if not names or not len(rows):
            return out
        # " name " in " normalised text ": the name's words in a row, whole words, with
        # anything but word characters between them. The pattern starts with a literal
        # (a leading look-behind made it 9x slower); `_whole_word_match` checks the start.
        pattern = re.compile("|".join(r"\W+".join(map(re.escape, n.split(" "))) + r"(?!\w)"
                                      for n in names))
        keys = {max(n.split(" "), key=len) for n in names}  # a match contains one of these
        for k, text in enumerate(self.query_texts(rows) if texts is None else (texts[r] for r in rows)):
            low = text.lower()
            out[k] = any(key in low for key in keys) and _whole_word_match(pattern, low)
        return out

    def lexical(self, row: int, text: str | None = None) -> np.ndarray:
        """TF-IDF cosine of a note's query text (links removed) to every note's text."""
        return self.tfidf.similarities_to(self.query_texts([row])[0] if text is None else text)

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
        allowed = view.candidates.copy()
        allowed[i] = False
        cols, fused, cosine, lexical, mentioned = self.scores(view, i, allowed, 2 * k)  # a margin
        if cols is not None:  # the shortlist's scores: `top` indexes them, `ids` the lens
            allowed = allowed[cols]
        ids = np.arange(len(fused)) if cols is None else cols
        scores = np.where(allowed, fused, -np.inf)
        n_ok = int(allowed.sum())
        if n_ok == 0:
            return []
        if n_ok > k:
            kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
            above, tied = np.flatnonzero(scores > kth), np.flatnonzero(scores == kth)
            # ties at the cut: the first paths are kept
            tied = sorted(tied, key=lambda j: self.notes[int(view.rows[ids[j]])].path)
            top = np.concatenate([above, np.array(tied[:k - len(above)], dtype=np.int64)])
        else:
            top = np.flatnonzero(allowed)
        probs = view.calibrator(fused[top])
        top, probs = top[probs >= floor], probs[probs >= floor]
        linked = self.links.get(path, ())
        out = []
        for j, p, passage in zip(top, probs, self._passages(view, i, ids[top])):
            note = self.notes[int(view.rows[ids[j]])]
            out.append(Related(path=note.path, title=note.title, score=float(p),
                               score_kind=view.calibrator.kind, linked=note.path in linked,
                               raw=float(fused[j]), cosine=float(cosine[j]),
                               lexical=float(lexical[j]), mentioned=bool(mentioned[j]),
                               passage=passage, lens=view.lens.name))
        out.sort(key=lambda r: (-r.raw, r.path))
        return out

    def _related_learned(self, view: LensView, path: str, i: int, k: int, floor: float) -> list[Related]:
        features, graph = self.pair_features(view)
        cand, x = features.query(i, graph, view.candidates)
        if len(cand) == 0:
            return []
        probs = view.model.probability(x)
        order = sorted(range(len(cand)), key=lambda j: (-probs[j], self.notes[int(view.rows[cand[j]])].path))
        linked = self.links.get(path, ())
        col = {f: learn.FEATURES.index(f) for f in ("dense", "lexical", "mention")}
        order = [j for j in order[:k] if probs[j] >= floor]
        passages = self._passages(view, i, cand[order])
        out = []
        for j, passage in zip(order, passages):
            note = self.notes[int(view.rows[cand[j]])]
            contrib = view.model.contributions(x[j])
            top = sorted(zip(learn.FEATURES, contrib), key=lambda kv: -kv[1])[:3]
            out.append(Related(path=note.path, title=note.title, score=float(probs[j]),
                               score_kind="probability", linked=note.path in linked,
                               raw=float(probs[j]), cosine=float(x[j, col["dense"]]),
                               lexical=float(x[j, col["lexical"]]),
                               mentioned=bool(x[j, col["mention"]]),
                               passage=passage, lens=view.lens.name,
                               signals=tuple((f, float(c)) for f, c in top)))
        return out

    def _passages(self, view: LensView, query: int, candidates) -> list[str]:
        """Per candidate, its chunk closest to the query note (the passage that matched),
        read from the store: '' when the store no longer has it."""
        paths = [self.notes[int(view.rows[j])].path for j in (query, *candidates)]
        with self.reader.store() as store:
            got, _, texts, matrix = store.lens_vectors(self.embedder_id, view.lens.name, paths)
        chunks: dict[str, list[int]] = {}
        for k, p in enumerate(got):
            chunks.setdefault(p, []).append(k)
        mine = chunks.get(paths[0])
        if not mine:
            return [""] * len(candidates)
        centre = matrix[mine].mean(axis=0)
        return [_clip(texts[ks[int(np.argmax(matrix[ks] @ centre))]]) if (ks := chunks.get(p)) else ""
                for p in paths[1:]]

    def lens_notes(self, lens_name: str) -> list[str]:
        """Paths the lens applies to as a source (what `related --all` iterates)."""
        view = self.views[lens_name]
        return sorted(self.notes[int(view.rows[i])].path for i in np.flatnonzero(view.sources))


def _whole_word_match(pattern: re.Pattern, text: str) -> bool:
    """Whether `pattern` matches in `text` where no word character comes before."""
    m = pattern.search(text)
    while m is not None:
        if m.start() == 0 or not WORD_CHAR.match(text, m.start() - 1):
            return True
        m = pattern.search(text, m.start() + 1)
    return False


def _same_texts(a: tuple, b: tuple) -> bool:
    """Whether two lenses' (paths, chunk numbers, text hashes, matrix) hold the same chunks."""
    return a[:3] == b[:3]


def _chunk_keys(keys) -> bytes:
    """(path, chunk number, text hash) of chunks as bytes, for a digest (no path holds a NUL)."""
    return "".join(f"{p}\0{c}\0{h}\n" for p, c, h in keys).encode("utf-8", "surrogatepass")


def _clip(text: str) -> str:
    """A chunk as its passage is shown: whitespace collapsed, at most PASSAGE_CHARS."""
    head = " ".join(text[:PASSAGE_CHARS * 8].split())  # enough, unless mostly whitespace
    if len(head) <= PASSAGE_CHARS and len(text) > PASSAGE_CHARS * 8:
        head = " ".join(text.split())
    return head if len(head) <= PASSAGE_CHARS else head[:PASSAGE_CHARS - 1] + "\u2026"


def _note_vectors(chunk_vectors: np.ndarray, starts) -> np.ndarray:
    """L2-normalised sums of chunk vectors, one per note whose chunks begin at `starts`
    (float64; full loads and incremental updates share it so both give the same floats)."""
    sums = np.add.reduceat(chunk_vectors.astype(np.float64), starts, axis=0)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)


def _narrowed(buffer: np.ndarray, count: int, d: int, block: int = 8192) -> np.ndarray:
    """The first `count` rows of `d` float64 values in `buffer` (an array that owns its
    memory, of which no view is left) as a (count, d) float32 array in the same memory:
    what `astype(np.float32)` gives, without the float32 matrix beside the float64 one
    (150 MB at 100,000 notes). `buffer` is shrunk to it and must not be used after."""
    narrow = buffer.view(np.float32)
    for a in range(0, count, block):
        # rows a.. as float32 end before the float64 values of the rows after them begin,
        # so no row is overwritten before it is read (numpy copies the first block through
        # a temporary array: it overlaps itself)
        narrow[a * d:min(a + block, count) * d] = buffer[a * d:min(a + block, count) * d]
    del narrow
    buffer.resize(-(-count * d // 2), refcheck=False)  # a realloc: the rest is given back
    return buffer.view(np.float32)[:count * d].reshape(count, d)


def _centring(vecs: np.ndarray, mean: np.ndarray, block: int = 2048) -> np.ndarray:
    """(n, 2) float32: each note vector's r.m and 1/|r - m| (see LensView)."""
    out = np.zeros((len(vecs), 2), dtype=np.float32)
    if len(vecs):
        out[:, 0] = vecs @ mean  # every row in one product: BLAS may add up a row's terms
        # in another order when given some of the rows; norms are the same row by row
        for a in range(0, len(vecs), block):  # (`vecs - mean` whole was another copy of vecs)
            out[a:a + block, 1] = 1.0 / np.linalg.norm(vecs[a:a + block] - mean, axis=1).clip(1e-12)
    return out


def _grown(arr: np.ndarray, size: int, d: int) -> np.ndarray:
    """`arr` with room for `size` rows: the same buffer when it has spare rows (rows
    beyond len(arr) are invisible to the snapshots that hold `arr`; snapshots are only
    ever derived one from the other), else a bigger copy with spare rows."""
    if size <= len(arr):
        return arr[:size]
    base = arr.base
    if isinstance(base, np.ndarray) and base.ndim == 2 and base.shape[0] >= size \
            and base.shape[1] == d and base.ctypes.data == arr.ctypes.data:
        return base[:size]
    grown = np.zeros((size + size // 4 + 16, d), dtype=np.float32)
    if len(arr):
        grown[:len(arr)] = arr
    return grown[:size]


def _sketch_axes(view: LensView, sample: int = 20000) -> np.ndarray:
    """(d, SKETCH_DIM) float32: the main axes of a lens's centred unit vectors (from a
    seeded sample of them: the axes of 20,000 notes are those of 100,000 to a few per cent)."""
    n, d = view.raw.shape
    pick = np.sort(np.random.default_rng(0).choice(n, min(n, sample), replace=False))
    c = view.centred_rows(pick).astype(np.float64)
    _, axes = np.linalg.eigh(c.T @ c)
    return np.ascontiguousarray(axes[:, ::-1][:, :min(SKETCH_DIM, d)], dtype=np.float32)


def _sketch(view: LensView, idx: np.ndarray, block: int = 8192) -> np.ndarray:
    """(len(idx), SKETCH_DIM) float32: lens notes `idx` on the view's principal axes."""
    out = np.empty((len(idx), view.basis.shape[1]), dtype=np.float32)
    for a in range(0, len(idx), block):
        out[a:a + block] = view.centred_rows(idx[a:a + block]) @ view.basis
    return out
