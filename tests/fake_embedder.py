"""A deterministic fake embedder for tests: hashed bag of words, counting what it embeds.

Similar texts get similar vectors (shared words land in the same buckets), so ranking
tests mean something without the real model. Also runnable as a `lenslink` stand-in for
subprocess tests: `python tests/fake_embedder.py index VAULT --embedder fake`, with

- FAKE_EMBED_SLEEP: seconds to sleep before each batch (to kill a run mid-way),
- FAKE_EMBED_LOG: a file that gets one line per embedded text (sha256 of the text).
"""

from __future__ import annotations

import hashlib
import os
import re
import time

import numpy as np

from lenslink import embedders

DIMENSION = 64
WORD = re.compile(r"\w+")


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def bag_of_words(text: str, dimension: int = DIMENSION) -> np.ndarray:
    """Signed hashed counts of the lower-cased words, L2-normalised (a fixed unit
    vector for a text without words)."""
    vec = np.zeros(dimension, dtype=np.float64)
    for word in WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        vec[digest[0] % dimension] += 1.0 if digest[1] % 2 else -1.0
    norm = np.linalg.norm(vec)
    if norm == 0:
        vec[0], norm = 1.0, 1.0
    return (vec / norm).astype(np.float32)


class FakeEmbedder:
    """Counts its calls (`calls`) and keeps every text it embedded (`texts`), in order.

    `fail_on_call=n` raises `fail_with` on the n-th call of `embed_batch` (1-based),
    before embedding anything, to simulate an interruption."""

    def __init__(self, batch_size: int = 4, fail_on_call: int | None = None,
                 fail_with: type[BaseException] = KeyboardInterrupt,
                 sleep: float = 0.0, log: str | None = None):
        self.id = f"fake-bow-{DIMENSION}"
        self.dimension = DIMENSION
        self.batch_size = batch_size
        self.fail_on_call = fail_on_call
        self.fail_with = fail_with
        self.sleep = sleep
        self.log = log
        self.calls = 0
        self.texts: list[str] = []

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise self.fail_with()
        if self.sleep:
            time.sleep(self.sleep)
        out = np.stack([bag_of_words(t) for t in texts]) if texts else \
            np.zeros((0, DIMENSION), dtype=np.float32)
        self.texts += texts
        if self.log:
            with open(self.log, "a", encoding="utf-8") as f:
                f.write("".join(text_sha(t) + "\n" for t in texts))
        return out

    def reset_counts(self) -> None:
        self.calls = 0
        self.texts = []


def register_from_environment() -> None:
    """Register "fake" configured from FAKE_EMBED_SLEEP / FAKE_EMBED_LOG (subprocess use)."""
    sleep = float(os.environ.get("FAKE_EMBED_SLEEP", "0"))
    log = os.environ.get("FAKE_EMBED_LOG") or None
    embedders.register("fake", lambda **options: FakeEmbedder(sleep=sleep, log=log))


if __name__ == "__main__":
    register_from_environment()
    from lenslink.cli import main

    main(prog_name="lenslink")
