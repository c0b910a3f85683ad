#!/usr/bin/env python3
"""A cheap deterministic embedder for the speed benchmarks: hashed bag of words.

What the benchmarks time around the model (scanning, hashing, SQLite, ranking, the
daemon) must not drown in the model's own cost, so this stands in for it: words are
hashed (crc32, stable across processes) into `dimension` signed buckets and the counts
L2-normalised. Similar texts still get similar vectors, so ranking does real work.
It is registered as `bench-bow` (384 dimensions, like all-MiniLM-L6-v2).

Also runnable as a `lenslink` stand-in with the embedder registered, for subprocess
benchmarks (like tests/fake_embedder.py):

  python bench/cheap_embedder.py index VAULT --embedder bench-bow
  python bench/cheap_embedder.py serve VAULT --embedder bench-bow --port 0

BENCH_EMBED_LOG=FILE appends one line per embedded text (sha256 of the text), so a
benchmark can count what was embedded and check that nothing was embedded twice.
"""
from __future__ import annotations

import hashlib
import os
import re
import zlib

import numpy as np

NAME = "bench-bow"
DIMENSION = 384
WORD = re.compile(r"\w+")


class CheapEmbedder:
    """Hashed bag of words; `texts_embedded` counts what it was asked to embed."""

    def __init__(self, dimension: int = DIMENSION, batch_size: int = 256, log: str | None = None):
        self.dimension = dimension
        self.batch_size = batch_size
        self.id = f"{NAME}-{dimension}"
        self.log = log
        self.texts_embedded = 0
        self.calls = 0
        self._buckets: dict[str, tuple[int, float]] = {}

    def _bucket(self, word: str) -> tuple[int, float]:
        hit = self._buckets.get(word)
        if hit is None:
            h = zlib.crc32(word.encode("utf-8"))
            hit = self._buckets[word] = (h % self.dimension, 1.0 if (h >> 16) & 1 else -1.0)
        return hit

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Unit float32 vectors of shape (len(texts), dimension)."""
        self.calls += 1
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            pairs = [self._bucket(w) for w in WORD.findall(text.lower())]
            if not pairs:
                out[row, 0] = 1.0
                continue
            idx, sign = zip(*pairs)
            vec = np.bincount(idx, weights=sign, minlength=self.dimension)
            norm = np.linalg.norm(vec)
            if norm == 0:
                out[row, 0] = 1.0
            else:
                out[row] = vec / norm
        self.texts_embedded += len(texts)
        if self.log:
            with open(self.log, "a", encoding="utf-8") as f:
                f.write("".join(hashlib.sha256(t.encode("utf-8")).hexdigest() + "\n"
                                for t in texts))
        return out


def register(log: str | None = None) -> None:
    """Make `--embedder bench-bow` available (log from BENCH_EMBED_LOG unless given)."""
    from lenslink import embedders

    log = log or os.environ.get("BENCH_EMBED_LOG") or None
    embedders.register(NAME, lambda **options: CheapEmbedder(log=log, **options))


if __name__ == "__main__":
    register()
    from lenslink.cli import main

    main(prog_name="lenslink")
