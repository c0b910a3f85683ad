"""Lexical signals: TF-IDF cosine between notes, and note titles mentioned in a text.

Embeddings miss names, jargon and rare words that people link by; these catch them.
numpy only: postings as flat arrays, one slice per query word.
"""
from __future__ import annotations

import copy
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable

import numpy as np

TOKEN = re.compile(r"\w{2,}")
WORD = re.compile(r"\w+")
MIN_NAME_CHARS = 3
MAX_NAME_WORDS = 12
MAX_QUERY_TERMS = 64
# A query reads at most this many postings (its heaviest words first): a query's cost
# is bounded whatever the vault. Vaults of a few thousand notes never reach it (64 words
# x their note count); at 100,000 notes it drops words found in tens of thousands of
# notes, which add little to a cosine.
MAX_QUERY_POSTINGS = 200_000
TEXTS_PER_BLOCK = 4096  # texts an index is built from keep their words in blocks of this many


class TfIdf:
    """TF-IDF (1 + log tf, smoothed idf, L2-normalised) over a fixed list of texts.

    A query uses its MAX_QUERY_TERMS heaviest words only (as Lucene's MoreLikeThis
    does), and of those as many as fit in MAX_QUERY_POSTINGS postings: common words
    have long postings and add little to a cosine."""

    def __init__(self, texts: Iterable[str]):
        """The index of `texts` (document i: the i-th text); a generator is read once."""
        self._index(enumerate(texts))

    @classmethod
    def of_docs(cls, n: int, docs: Iterable[tuple[int, str]]) -> "TfIdf":
        """The index of documents 0..n-1 given as (document, text) pairs in ascending
        order of document, read once (a document not given is empty): each text is
        tokenised and dropped, so a full load never holds every text, nor every text's
        word counts as dicts (1.3 GB at 100,000 notes)."""
        new = cls.__new__(cls)
        new._index(docs, n)
        return new

    def _index(self, docs: Iterable[tuple[int, str]], n: int | None = None) -> None:
        # The weights are computed in numpy from each text's distinct words (as numbers,
        # in order of first use) and counts, with the float operations a dict per text
        # made, in the same order: the same bits. The words and counts are kept per block
        # of texts (one array grown to the end left its old copies in the heap).
        numbers: dict[str, int] = {}
        blocks: list[tuple[np.ndarray, ...]] = []  # (documents, word counts, words, counts)
        part = [array("i") for _ in range(4)]
        last = -1
        for doc, text in docs:
            if doc <= last:
                raise ValueError("documents must come in ascending order")
            last = doc
            c = Counter(TOKEN.findall(text.lower()))
            new = [t for t in c if t not in numbers]
            numbers.update(zip(new, range(len(numbers), len(numbers) + len(new))))
            part[0].append(doc)
            part[1].append(len(c))
            part[2].extend(map(numbers.__getitem__, c))
            part[3].extend(c.values())
            if len(part[0]) == TEXTS_PER_BLOCK:
                blocks.append(tuple(np.array(a, dtype=np.int32) for a in part))
                part = [array("i") for _ in range(4)]
        if part[0]:
            blocks.append(tuple(np.array(a, dtype=np.int32) for a in part))
        del part
        n = sum(len(b[0]) for b in blocks) if n is None else n
        df = np.zeros(len(numbers), dtype=np.int64)
        for _, _, words, _ in blocks:
            df += np.bincount(words, minlength=len(numbers))
        terms = list(numbers)  # by number
        del numbers
        # Terms seen once only change norms; leaving them out keeps postings small.
        vocab = {t: i for i, t in enumerate(sorted(t for t, k in zip(terms, df.tolist()) if k >= 2))}
        idf_of_df = {k: math.log((1 + n) / (1 + k)) + 1 for k in set(df.tolist())}
        self.vocab, self.idf = vocab, {t: idf_of_df[k] for t, k in zip(terms, df.tolist())}
        self.unseen_idf = math.log(1 + n) + 1
        term_idf = np.array([idf_of_df[k] for k in df.tolist()], dtype=np.float64)
        term_id = np.array([vocab.get(t, -1) for t in terms], dtype=np.int32)
        del terms
        # postings: for each term, its documents (ascending) and weights; filled block by
        # block, each term's documents after those of the blocks before (a counting sort)
        kept = term_id >= 0
        per_term = np.zeros(len(vocab), dtype=np.int64)
        per_term[term_id[kept]] = df[kept]
        term_ptr = np.concatenate([[0], np.cumsum(per_term)])
        term_docs = np.empty(int(term_ptr[-1]), dtype=np.int32)
        term_weights = np.empty(int(term_ptr[-1]), dtype=np.float32)
        free = term_ptr[:-1].copy()  # where each term's next document goes
        blocks.reverse()
        while blocks:  # each block dropped once done
            owners, sizes, words, counts = blocks.pop()
            weights = tfidf_weights(sizes, counts, term_idf[words])
            ids = term_id[words]
            keep = ids >= 0
            ids, docs, weights = ids[keep], np.repeat(owners, sizes)[keep], weights[keep]
            order = np.argsort(ids, kind="stable")  # by term, then document
            ids = ids[order]
            here = np.bincount(ids, minlength=len(vocab))
            rank = np.arange(len(ids)) - (np.cumsum(here) - here)[ids]  # within its term here
            at = free[ids] + rank
            term_docs[at] = docs[order]
            term_weights[at] = weights[order]
            free += here
        self.n = n
        self.term_docs, self.term_weights, self.term_ptr = term_docs, term_weights, term_ptr
        self.base_n = n
        # documents replaced or added since the postings were built: {doc: (terms, weights)}
        self.overlay: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._masked = np.zeros(0, dtype=np.int64)

    def vector(self, text: str, top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(term ids ascending, weights) of a text with this corpus's vocabulary and idf;
        with `top`, only its `top` heaviest terms (the weights stay those of the whole
        text, so they are the text's share of a full cosine)."""
        counts = Counter(TOKEN.findall(text.lower()))
        w = {t: (1 + math.log(k)) * self.idf.get(t, self.unseen_idf) for t, k in counts.items()}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        kept = [(self.vocab[t], v / norm) for t, v in w.items() if t in self.vocab]
        if top is not None and len(kept) > top:
            kept = sorted(kept, key=lambda kv: (-kv[1], kv[0]))[:top]
        kept.sort()
        return (np.array([k for k, _ in kept], dtype=np.int32),
                np.array([v for _, v in kept], dtype=np.float32))

    def _within_budget(self, terms: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The heaviest of these terms whose postings add up to at most MAX_QUERY_POSTINGS
        (the heaviest one always), in term order."""
        lengths = self.term_ptr[terms + 1] - self.term_ptr[terms]
        if int(lengths.sum()) <= MAX_QUERY_POSTINGS:
            return terms, weights
        order = np.lexsort((terms, -weights))  # heaviest first, ties by term id
        count = max(1, int((np.cumsum(lengths[order]) <= MAX_QUERY_POSTINGS).sum()))
        kept = np.sort(order[:count])
        return terms[kept], weights[kept]

    def with_docs(self, docs: dict[int, str]) -> "TfIdf":
        """A copy in which documents `docs` are replaced or added (ids from n on), without
        rebuilding the postings: vocabulary and idf stay those of the original corpus
        until the next full build. This object is not changed."""
        new = copy.copy(self)
        new.overlay = {**self.overlay, **{i: self.vector(t) for i, t in docs.items()}}
        new.n = max(self.n, max(docs, default=-1) + 1)
        new._masked = np.array(sorted(i for i in new.overlay if i < new.base_n), dtype=np.int64)
        return new

    def similarities_to(self, text: str, top: int | None = MAX_QUERY_TERMS) -> np.ndarray:
        """Cosine of a text (its `top` heaviest terms; None: all) to every document,
        with this corpus's vocabulary and idf (float32, length n)."""
        terms, weights = self.vector(text, top)
        if top is not None:
            terms, weights = self._within_budget(terms, weights)
        # float32 products added up in float64, in term order: the same sums whichever
        # way a document is stored (postings, or the overlay of an update)
        out = np.zeros(self.n, dtype=np.float64)
        ptr, docs, values = self.term_ptr, self.term_docs, self.term_weights
        for t, w in zip(terms.tolist(), weights):
            a, b = ptr[t], ptr[t + 1]
            out[docs[a:b]] += values[a:b] * w  # a term's documents are distinct
        if self.overlay:
            out[self._masked] = 0.0
            for doc, (d_terms, d_weights) in self.overlay.items():
                _, qi, di = np.intersect1d(terms, d_terms, assume_unique=True, return_indices=True)
                total = 0.0
                for product in (weights[qi] * d_weights[di]).tolist():
                    total += product
                out[doc] = total
        return out.astype(np.float32)


def tfidf_weights(sizes: np.ndarray, counts: np.ndarray, idf: np.ndarray) -> np.ndarray:
    """The weights (float64) of the words of texts of `sizes` distinct words each, one
    after the other, that occur `counts` times in their text and have these `idf`:
    (1 + log count) * idf over the text's L2 norm. The same floats as Python's, word by
    word (`TfIdf.vector`), bit for bit: the same operations in the same order."""
    distinct, inverse = np.unique(counts, return_inverse=True)
    weights = (1.0 + np.array([math.log(k) for k in distinct.tolist()], dtype=np.float64)[inverse]) * idf
    squares = (weights * weights).tolist()
    norms, start = [], 0
    for end in np.cumsum(sizes).tolist():  # each text's norm: Python's sum, in the text's order
        norms.append(math.sqrt(sum(squares[start:end])) or 1.0)
        start = end
    return weights / np.repeat(np.array(norms, dtype=np.float64), sizes)


def normalise(text: str) -> str:
    """Lower-case words joined by single spaces (how names are matched in text)."""
    return " ".join(WORD.findall(text.lower()))


def matchable(names) -> set[str]:
    """A note's names (title, aliases) as they are looked for in texts: normalised, of at
    least MIN_NAME_CHARS characters and at most MAX_NAME_WORDS words."""
    return {n for n in map(normalise, names)
            if len(n) >= MIN_NAME_CHARS and n.count(" ") < MAX_NAME_WORDS}


class Mentions:
    """Which notes' titles or aliases (of up to 12 words) appear, as whole words, in a
    text. Names are looked up by their first word, so a text costs one dict lookup per
    word plus one per name that starts there."""

    def __init__(self, names: list[list[str]]):
        self.by_name: dict[str, frozenset[int]] = {}
        self.sizes: dict[str, frozenset[int]] = {}  # first word -> name lengths in words
        self.heads: set[str] = set()  # "first second" words of the names of 2 words or more
        self._add(enumerate(names))

    def _add(self, items) -> None:
        by_name, sizes = {}, {}
        for i, note_names in items:
            for name in matchable(note_names):
                words = name.count(" ") + 1
                by_name.setdefault(name, set()).add(i)
                sizes.setdefault(name.split(" ", 1)[0], set()).add(words)
                if words > 1:
                    self.heads.add(" ".join(name.split(" ", 2)[:2]))
        for name, rows in by_name.items():
            self.by_name[name] = self.by_name.get(name, frozenset()) | rows
        for first, lengths in sizes.items():
            self.sizes[first] = self.sizes.get(first, frozenset()) | lengths

    def with_names(self, names: dict[int, list[str]]) -> "Mentions":
        """A copy in which notes `names` are known by these names only (an empty list:
        the note is gone). This object is not changed."""
        new = copy.copy(self)
        new.by_name, new.sizes, new.heads = dict(self.by_name), dict(self.sizes), set(self.heads)
        changed = set(names)
        for name, rows in self.by_name.items():
            if rows & changed:
                new.by_name[name] = rows - changed
        new._add(names.items())
        return new

    def mentioned(self, text: str) -> set[int]:
        words = WORD.findall(text.lower())
        found: set[int] = set()
        heads, by_name = self.heads, self.by_name
        for start, word in enumerate(words):
            sizes = self.sizes.get(word)
            if not sizes:
                continue
            # names of two words or more start with a known pair of words: most
            # positions are ruled out without building a longer string
            longer = start + 1 < len(words) and f"{word} {words[start + 1]}" in heads
            for size in sizes:
                if size == 1 or longer:
                    hit = by_name.get(word if size == 1 else " ".join(words[start:start + size]))
                    if hit:
                        found.update(hit)
        return found
