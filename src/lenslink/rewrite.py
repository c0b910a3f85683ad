"""Rewrite lens texts with a chat model before they are embedded.

The essay's trick ("Don't use cosine similarity", section "Rewriting"): ask a model to
"Rewrite the following text in standard English using Markdown. Focus on content, ignore
style. Limit to 200 words." Two notes that say the same thing in different styles then
embed alike, and typos or formatting stop counting as similarity.

Any OpenAI-compatible chat endpoint works (OpenAI, Ollama, LM Studio, vLLM) through the
official `openai` client with its own retries off: we retry 429 / 5xx / timeouts /
connection errors with exponential backoff, and every failure is one `RewriteError` line.
Only a lens with a `rewrite` table ever sends anything; the indexer caches each rewrite
in the store by (model, prompt hash, text hash), so a text is rewritten once.
"""
from __future__ import annotations

import hashlib
import os

from .embedders.openai_embedder import (DEFAULT_BASE_URL, LOCAL_DUMMY_KEY, call_with_retries,
                                        describe_error, is_local_url)
from .errors import LenslinkError, RewriteError, RewriteRejected
from .lenses import DEFAULT_REWRITE_PROMPT, RewriteSettings


def prompt_hash(prompt: str) -> str:
    """What the rewrite cache keys a prompt by."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


class ChatModel:
    """One chat model at an OpenAI-compatible endpoint: `reply(system, user)` returns its
    answer. Shared by the rewriter and the pair labeller (`label.py`); the class
    attributes name the use in every error message and pick the error classes."""

    # Backoff between retries; class attributes so that tests can make them short.
    retry_base_delay = 1.0
    retry_max_delay = 30.0
    purpose = "rewrite"                   # "unknown rewrite model", "rewrite request to"
    used_for = "used to rewrite lens texts"
    answer = "rewrite"                    # "returned an empty rewrite"
    error: type[LenslinkError] = RewriteError
    rejected: type[LenslinkError] = RewriteRejected

    def __init__(self, *, model: str, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                 max_retries: int = 5, retry_base_delay: float | None = None,
                 retry_max_delay: float | None = None):
        if not model:
            raise self.error(f'a {self.purpose} needs a model, e.g. model = "gpt-4o-mini"')
        if max_retries < 0:
            raise self.error(f"{self.purpose} max_retries must be 0 or more, got {max_retries}")
        self.model = model
        self.max_retries = max_retries
        if retry_base_delay is not None:
            self.retry_base_delay = retry_base_delay
        if retry_max_delay is not None:
            self.retry_max_delay = retry_max_delay
        self._endpoint = base_url.rstrip("/") if base_url else DEFAULT_BASE_URL
        self._client = self._make_client(api_key_env, timeout)

    @classmethod
    def from_settings(cls, settings, **overrides):
        """The chat model a config table describes (`RewriteSettings`, `LabelSettings`)."""
        return cls(model=settings.model, base_url=settings.base_url,
                   api_key_env=settings.api_key_env, timeout=settings.timeout,
                   max_retries=settings.max_retries, **overrides)

    def _make_client(self, api_key_env: str, timeout: float):
        import openai

        api_key = os.environ.get(api_key_env, "").strip()
        if not api_key:
            if not is_local_url(self._endpoint):
                raise self.error(f"set the environment variable {api_key_env} to an API key "
                                 f"for {self._endpoint} ({self.used_for})")
            api_key = LOCAL_DUMMY_KEY  # a server on this machine ignores the key
        # base_url given explicitly: OPENAI_BASE_URL in the environment cannot redirect texts.
        return openai.OpenAI(api_key=api_key, base_url=self._endpoint, timeout=timeout,
                             max_retries=0)

    def reply(self, system: str, user: str) -> str:
        """The model's answer (stripped) to `user` under the `system` message, at
        temperature 0; an empty answer raises `rejected`."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        response = call_with_retries(
            lambda: self._client.chat.completions.create(
                model=self.model, messages=messages, temperature=0),
            self.max_retries, self.retry_base_delay, self.retry_max_delay, self.error,
            f"{self.purpose} request to {self._endpoint}", self._status_error)
        choice = response.choices[0] if response.choices else None
        content = choice.message.content if choice is not None and choice.message else None
        if not content or not content.strip():
            reason = getattr(choice, "finish_reason", None) or "no choices"
            raise self.rejected(f"{self.model} at {self._endpoint} returned an empty "
                                f"{self.answer} ({reason})")
        return content.strip()

    def _status_error(self, exc) -> LenslinkError:
        """One actionable line for a non-retryable HTTP error."""
        if exc.status_code == 404:
            if exc.code == "model_not_found" or "model" in str(exc.message).lower():
                return self.error(f"unknown {self.purpose} model {self.model} at {self._endpoint}")
            return self.error(f"{self._endpoint} has no chat completions endpoint (404); "
                              "check base_url")
        if exc.status_code in (401, 403):
            return self.error(f"{self._endpoint} refused the API key: {describe_error(exc)}")
        if exc.status_code in (400, 413, 422):  # this text, not the endpoint
            return self.rejected(f"{self.model} at {self._endpoint} rejected a text: "
                                 f"{describe_error(exc)}")
        return self.error(f"{self.purpose} request to {self._endpoint} was rejected: "
                          f"{describe_error(exc)}")


class Rewriter(ChatModel):
    """One chat model and prompt: `rewrite(texts)` returns each text rewritten.

    The prompt is the system message and the text the user message, so a note that asks
    a question is rewritten rather than answered."""

    def __init__(self, *, model: str, prompt: str = DEFAULT_REWRITE_PROMPT, **options):
        super().__init__(model=model, **options)
        self.prompt = prompt
        self.prompt_hash = prompt_hash(prompt)

    @classmethod
    def from_settings(cls, settings: RewriteSettings, **overrides) -> "Rewriter":
        """The rewriter a lens's `rewrite` table describes."""
        return super().from_settings(settings, prompt=settings.prompt, **overrides)

    def rewrite(self, texts: list[str]) -> list[str]:
        """Each text rewritten, in order (one request per text)."""
        return [self.rewrite_text(text) for text in texts]

    def rewrite_text(self, text: str) -> str:
        """One text rewritten; a blank text stays as it is and costs no request."""
        if not text.strip():
            return text
        return self.reply(self.prompt, text)
