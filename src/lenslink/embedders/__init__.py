"""Embedders turn lens texts into unit-length float32 vectors, behind a plain registry.

An embedder is tiny: an `id` (part of the vector cache key), a `dimension`, a
`batch_size` and `embed_batch`. Factories are imported lazily, so importing this
package loads neither onnxruntime nor openai.
"""

from __future__ import annotations

import inspect
from typing import Callable, Protocol, Sequence

import numpy as np

from lenslink.errors import EmbedderError

DEFAULT_EMBEDDER = "minilm"


class Embedder(Protocol):
    """What the index needs from a model: vectors for texts, and a stable id to cache them under.

    Not runtime-checkable on purpose: `isinstance` would read `dimension`, which may
    cost a request for a remote embedder that has not learnt it yet.
    """

    id: str
    dimension: int
    batch_size: int

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Return float32 vectors of shape (len(texts), dimension), rows L2-normalised."""
        ...


Factory = Callable[..., Embedder]

_FACTORIES: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Make `factory(**options)` available as `get_embedder(name, **options)`."""
    _FACTORIES[name] = factory


def available() -> list[str]:
    """Names of registered embedders, sorted."""
    return sorted(_FACTORIES)


def get_embedder(name: str = DEFAULT_EMBEDDER, **options: object) -> Embedder:
    """Build the embedder registered as `name` with `options` (from the vault config)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise EmbedderError(
            f"unknown embedder {name!r}; available: {', '.join(available())}"
        ) from None
    return factory(**options)


def embed_all(
    embedder: Embedder,
    texts: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed `texts` in batches of `embedder.batch_size`; call `progress(n_done)` after each."""
    if not texts:
        return embedder.embed_batch([])  # the embedder knows its empty shape; no probe request
    batches = []
    for start in range(0, len(texts), embedder.batch_size):
        batches.append(embedder.embed_batch(list(texts[start : start + embedder.batch_size])))
        if progress is not None:
            progress(start + len(batches[-1]))
    return np.concatenate(batches)


def _construct(cls: type, name: str, options: dict) -> Embedder:
    """`cls(**options)`, but a misspelt option is a config error, not a TypeError."""
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise EmbedderError(f"bad options for embedder {name!r}: {exc}") from None
    return cls(**options)


def _minilm(**options: object) -> Embedder:
    from lenslink.embedders.minilm import MiniLMEmbedder

    return _construct(MiniLMEmbedder, "minilm", options)


def _openai(**options: object) -> Embedder:
    from lenslink.embedders.openai_embedder import OpenAIEmbedder

    return _construct(OpenAIEmbedder, "openai", options)


register("minilm", _minilm)
register("openai", _openai)

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "available",
    "embed_all",
    "get_embedder",
    "register",
]
