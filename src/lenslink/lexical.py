"""Lexical signals: TF-IDF cosine between notes, and note titles mentioned in a text.

Embeddings miss names, jargon and rare words that people link by; these catch them.
numpy only: postings as flat arrays, one `bincount` per query.
"""
from __future__ import annotations

import copy
import math
import re
from collections import Counter

import numpy as np

TOKEN = re.compile(r"\w{2,}")
WORD = re.compile(r"\w+")
MIN_NAME_CHARS = 3
MAX_NAME_WORDS = 12


class TfIdf:
    """TF-IDF (1 + log tf, smoothed idf, L2-normalised) over a fixed list of texts."""

    def __init__(self, texts: list[str]):
        counts = [Counter(TOKEN.findall(t.lower())) for t in texts]
        df = Counter(term for c in counts for term in c)
        n = len(texts)
        # Terms seen once only change norms; leaving them out keeps postings small.
        vocab = {t: i for i, t in enumerate(sorted(t for t, k in df.items() if k >= 2))}
        idf = {t: math.log((1 + n) / (1 + k)) + 1 for t, k in df.items()}
        self.vocab, self.idf, self.unseen_idf = vocab, idf, math.log(1 + n) + 1
        doc_terms, doc_weights, doc_ptr = [], [], [0]
        for c in counts:
            w = {t: (1 + math.log(k)) * idf[t] for t, k in c.items()}
            norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
            kept = sorted((vocab[t], v / norm) for t, v in w.items() if t in vocab)
            doc_terms += [k for k, _ in kept]
            doc_weights += [v for _, v in kept]
            doc_ptr.append(len(doc_terms))
        self.n = n
        self.doc_ptr = np.asarray(doc_ptr, dtype=np.int64)
        self.doc_terms = np.asarray(doc_terms, dtype=np.int64)
        self.doc_weights = np.asarray(doc_weights, dtype=np.float32)
        order = np.argsort(self.doc_terms, kind="stable")
        docs = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.doc_ptr))
        self.term_docs = docs[order]
        self.term_weights = self.doc_weights[order]
        self.term_ptr = np.concatenate([[0], np.cumsum(np.bincount(self.doc_terms, minlength=len(vocab)))])
        self.base_n = n
        # documents replaced or added since the postings were built: {doc: (terms, weights)}
        self.overlay: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, weights) of a text with this corpus's vocabulary and idf."""
        counts = Counter(TOKEN.findall(text.lower()))
        w = {t: (1 + math.log(k)) * self.idf.get(t, self.unseen_idf) for t, k in counts.items()}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        kept = sorted((self.vocab[t], v / norm) for t, v in w.items() if t in self.vocab)
        return (np.array([k for k, _ in kept], dtype=np.int64),
                np.array([v for _, v in kept], dtype=np.float32))

    def with_docs(self, docs: dict[int, str]) -> "TfIdf":
        """A copy in which documents `docs` are replaced or added (ids from n on), without
        rebuilding the postings: vocabulary and idf stay those of the original corpus
        until the next full build. This object is not changed."""
        new = copy.copy(self)
        new.overlay = {**self.overlay, **{i: self.vector(t) for i, t in docs.items()}}
        new.n = max(self.n, max(docs, default=-1) + 1)
        new._masked = np.array(sorted(i for i in new.overlay if i < new.base_n), dtype=np.int64)
        return new

    def similarities(self, i: int) -> np.ndarray:
        """Cosine of note `i` to every note (float32, length n)."""
        if i in self.overlay:
            return self._scores(*self.overlay[i])
        a, b = self.doc_ptr[i], self.doc_ptr[i + 1]
        return self._scores(self.doc_terms[a:b], self.doc_weights[a:b])

    def similarities_to(self, text: str) -> np.ndarray:
        """Cosine of any text to every note, with this corpus's vocabulary and idf."""
        return self._scores(*self.vector(text))

    def _scores(self, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if len(terms) == 0:
            return np.zeros(self.n, dtype=np.float32)
        starts, ends = self.term_ptr[terms], self.term_ptr[terms + 1]
        lengths = ends - starts
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        idx = np.arange(lengths.sum()) + offsets
        contrib = self.term_weights[idx] * np.repeat(weights, lengths)
        out = np.bincount(self.term_docs[idx], weights=contrib, minlength=self.n).astype(np.float32)
        if self.overlay:
            out[self._masked] = 0.0
            for doc, (d_terms, d_weights) in self.overlay.items():
                # as the postings would score it: float32 products added up in float64,
                # in term order (so a document scores the same before and after a full build)
                _, qi, di = np.intersect1d(terms, d_terms, assume_unique=True, return_indices=True)
                total = 0.0
                for product in (weights[qi] * d_weights[di]).tolist():
                    total += product
                out[doc] = total
        return out


def normalise(text: str) -> str:
    """Lower-case words joined by single spaces (how names are matched in text)."""
    return " ".join(WORD.findall(text.lower()))


class Mentions:
    """Which notes' titles or aliases (of up to 12 words) appear, as whole words, in a
    text. Names are looked up by their first word, so a text costs one dict lookup per
    word plus one per name that starts there."""

    def __init__(self, names: list[list[str]]):
        self.by_name: dict[str, frozenset[int]] = {}
        self.sizes: dict[str, frozenset[int]] = {}  # first word -> name lengths in words
        self._add(enumerate(names))

    def _add(self, items) -> None:
        by_name, sizes = {}, {}
        for i, note_names in items:
            for name in {normalise(n) for n in note_names}:
                words = name.count(" ") + 1
                if len(name) >= MIN_NAME_CHARS and words <= MAX_NAME_WORDS:
                    by_name.setdefault(name, set()).add(i)
                    sizes.setdefault(name.split(" ", 1)[0], set()).add(words)
        for name, rows in by_name.items():
            self.by_name[name] = self.by_name.get(name, frozenset()) | rows
        for first, lengths in sizes.items():
            self.sizes[first] = self.sizes.get(first, frozenset()) | lengths

    def with_names(self, names: dict[int, list[str]]) -> "Mentions":
        """A copy in which notes `names` are known by these names only (an empty list:
        the note is gone). This object is not changed."""
        new = copy.copy(self)
        new.by_name, new.sizes = dict(self.by_name), dict(self.sizes)
        changed = set(names)
        for name, rows in self.by_name.items():
            if rows & changed:
                new.by_name[name] = rows - changed
        new._add(names.items())
        return new

    def mentioned(self, text: str) -> set[int]:
        words = WORD.findall(text.lower())
        found: set[int] = set()
        for start, word in enumerate(words):
            for size in self.sizes.get(word, ()):
                hit = self.by_name.get(word if size == 1 else " ".join(words[start:start + size]))
                if hit:
                    found.update(hit)
        return found
