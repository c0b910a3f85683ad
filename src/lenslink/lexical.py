"""Lexical signals: TF-IDF cosine between notes, and note titles mentioned in a text.

Embeddings miss names, jargon and rare words that people link by; these catch them.
numpy only: postings as flat arrays, one `bincount` per query.
"""
from __future__ import annotations

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

    def similarities(self, i: int) -> np.ndarray:
        """Cosine of note `i` to every note (float32, length n)."""
        a, b = self.doc_ptr[i], self.doc_ptr[i + 1]
        return self._scores(self.doc_terms[a:b], self.doc_weights[a:b])

    def similarities_to(self, text: str) -> np.ndarray:
        """Cosine of any text to every note, with this corpus's vocabulary and idf."""
        counts = Counter(TOKEN.findall(text.lower()))
        w = {t: (1 + math.log(k)) * self.idf.get(t, self.unseen_idf) for t, k in counts.items()}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        kept = sorted((self.vocab[t], v / norm) for t, v in w.items() if t in self.vocab)
        return self._scores(np.array([k for k, _ in kept], dtype=np.int64),
                            np.array([v for _, v in kept], dtype=np.float32))

    def _scores(self, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if len(terms) == 0:
            return np.zeros(self.n, dtype=np.float32)
        starts, ends = self.term_ptr[terms], self.term_ptr[terms + 1]
        lengths = ends - starts
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        idx = np.arange(lengths.sum()) + offsets
        contrib = self.term_weights[idx] * np.repeat(weights, lengths)
        return np.bincount(self.term_docs[idx], weights=contrib, minlength=self.n).astype(np.float32)


def normalise(text: str) -> str:
    """Lower-case words joined by single spaces (how names are matched in text)."""
    return " ".join(WORD.findall(text.lower()))


class Mentions:
    """Which notes' titles or aliases appear, as whole words, in a text."""

    def __init__(self, names: list[list[str]]):
        self.by_name: dict[str, list[int]] = {}
        self.longest = 1
        for i, note_names in enumerate(names):
            for name in {normalise(n) for n in note_names}:
                if len(name) >= MIN_NAME_CHARS:
                    self.by_name.setdefault(name, []).append(i)
                    self.longest = max(self.longest, min(name.count(" ") + 1, MAX_NAME_WORDS))

    def mentioned(self, text: str) -> set[int]:
        words = WORD.findall(text.lower())
        found: set[int] = set()
        for start in range(len(words)):
            for size in range(1, min(self.longest, len(words) - start) + 1):
                hit = self.by_name.get(" ".join(words[start:start + size]))
                if hit:
                    found.update(hit)
        return found
