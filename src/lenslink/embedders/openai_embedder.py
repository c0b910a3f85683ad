"""Embeddings from an OpenAI-compatible endpoint (OpenAI, Ollama, LM Studio, vLLM...).

Uses the official `openai` client with its own retries switched off: we retry
429 / 5xx / timeouts / connection errors here, with exponential backoff whose base
delay is an option (so tests stay fast), and translate every failure into one
`EmbedderError` line.
"""

from __future__ import annotations

import os
import random
import time
from urllib.parse import urlsplit

import numpy as np

from lenslink.errors import EmbedderError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
# Servers on the user's own machine (Ollama, LM Studio) ignore the key, but the client wants one.
LOCAL_DUMMY_KEY = "unused"


def is_local_url(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host in LOCAL_HOSTS or host.endswith(".localhost")


class OpenAIEmbedder:
    """Vectors from `POST {base_url}/embeddings`, normalised to unit length.

    The dimension is the `dimensions` option if given, otherwise learnt from the first
    response; a later response with another dimension is an error, because mixing
    dimensions would corrupt the vector cache.
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        dimensions: int | None = None,
        batch_size: int = 64,
        timeout: float = 60.0,
        max_retries: int = 5,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
    ):
        if not model:
            raise EmbedderError(
                'the openai embedder needs a model: in .lenslink.toml, under [embedder_options], '
                'e.g. model = "text-embedding-3-small"'
            )
        if dimensions is not None and dimensions < 1:
            raise EmbedderError(f"openai dimensions must be at least 1, got {dimensions}")
        if batch_size < 1:
            raise EmbedderError(f"openai batch_size must be at least 1, got {batch_size}")
        if max_retries < 0:
            raise EmbedderError(f"openai max_retries must be 0 or more, got {max_retries}")
        self.model = model
        self.base_url = base_url.rstrip("/") if base_url else None
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self._dimensions = dimensions
        self._dimension: int | None = dimensions
        self._endpoint = self.base_url or DEFAULT_BASE_URL
        self.id = f"openai:{model}:{self.base_url or 'api.openai.com'}"
        if dimensions:
            self.id += f":{dimensions}"
        self._client = self._make_client(api_key_env, timeout)

    def _make_client(self, api_key_env: str, timeout: float):
        import openai

        api_key = os.environ.get(api_key_env, "").strip()
        if not api_key:
            if not is_local_url(self._endpoint):
                raise EmbedderError(
                    f"set the environment variable {api_key_env} to an API key for {self._endpoint}"
                )
            api_key = LOCAL_DUMMY_KEY
        # Pass base_url explicitly so OPENAI_BASE_URL in the environment cannot
        # silently send requests somewhere other than what `id` says.
        return openai.OpenAI(
            api_key=api_key, base_url=self._endpoint, timeout=timeout, max_retries=0
        )

    @property
    def dimension(self) -> int:
        """Vector length; without a `dimensions` option, one probe request learns it."""
        if self._dimension is None:
            self.embed_batch(["dimension probe"])
        assert self._dimension is not None
        return self._dimension

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Embed `texts` in requests of at most `batch_size`; rows in input order.

        An empty list costs no request; its shape is (0, 0) while the dimension is unknown.
        """
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        parts = [
            self._embed_request(texts[start : start + self.batch_size])
            for start in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts)

    def _embed_request(self, texts: list[str]) -> np.ndarray:
        # The API rejects empty strings; a single space embeds as "nothing".
        inputs = [text if text.strip() else " " for text in texts]
        response = self._with_retries(inputs)
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise EmbedderError(
                f"{self.model} at {self._endpoint} returned {len(rows)} vectors "
                f"for {len(texts)} texts"
            )
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        self._check_dimension(vectors.shape[1])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _check_dimension(self, found: int) -> None:
        if self._dimension is None:
            self._dimension = found
        elif found != self._dimension:
            raise EmbedderError(
                f"{self.model} at {self._endpoint} returned {found}-dimensional vectors, "
                f"expected {self._dimension}; did the model behind the endpoint change?"
            )

    def _with_retries(self, inputs: list[str]):
        kwargs: dict = {"model": self.model, "input": inputs, "encoding_format": "float"}
        if self._dimensions:
            kwargs["dimensions"] = self._dimensions
        return call_with_retries(
            lambda: self._client.embeddings.create(**kwargs), self.max_retries,
            self.retry_base_delay, self.retry_max_delay, EmbedderError,
            f"embedding request to {self._endpoint}", self._status_error)

    def _status_error(self, exc) -> EmbedderError:
        """One actionable line for a non-retryable HTTP error."""
        if exc.status_code == 404:
            if exc.code == "model_not_found" or "model" in str(exc.message).lower():
                return EmbedderError(f"unknown model {self.model} at {self._endpoint}")
            return EmbedderError(
                f"{self._endpoint} has no embeddings endpoint (404); check base_url"
            )
        if exc.status_code in (401, 403):
            return EmbedderError(f"{self._endpoint} refused the API key: {describe_error(exc)}")
        return EmbedderError(
            f"embedding request to {self._endpoint} was rejected: {describe_error(exc)}"
        )


def describe_error(exc: Exception) -> str:
    """The client's message (status code and the server's own words), on one line."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())


def backoff_delay(attempt: int, exc: Exception, base: float, ceiling: float) -> float:
    """Exponential delay with jitter; honours a short Retry-After from the server."""
    response = getattr(exc, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    try:
        if retry_after is not None:
            return min(max(float(retry_after), 0.0), ceiling)
    except ValueError:
        pass  # an HTTP date: fall back to our own schedule
    return min(base * 2**attempt, ceiling) * random.uniform(0.75, 1.0)


def call_with_retries(call, max_retries: int, base_delay: float, max_delay: float,
                      error: type[Exception], what: str, status_error):
    """Run an `openai` request, retrying 429, 5xx, timeouts and connection errors with
    backoff; other HTTP errors become `status_error(exc)`, exhausted retries `error`."""
    import openai

    retryable = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
    for attempt in range(max_retries + 1):
        try:
            return call()
        except retryable as exc:
            if getattr(exc, "code", None) == "insufficient_quota":
                raise error(f"{what}: quota exceeded: {describe_error(exc)}") from exc
            if attempt == max_retries:
                raise error(f"{what} failed after {attempt + 1} attempts: "
                            f"{describe_error(exc)}") from exc
            time.sleep(backoff_delay(attempt, exc, base_delay, max_delay))
        except openai.APIStatusError as exc:
            raise status_error(exc) from exc
    raise AssertionError("unreachable")
