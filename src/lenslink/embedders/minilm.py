"""The offline default embedder: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch.

The int8 model and the tokenizer ship in `embedders/data/`; the model is checked against
a pinned sha256 before it is loaded. `onnx_export` made it from the published fp32
weights and rebuilds it (`python -m lenslink.embedders.onnx_export`).
`precision="fp32"` runs the full-precision graph that `onnx_export` builds from those
weights (an optional install) instead.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lenslink.errors import EmbedderError

MODEL_FILE = "minilm-l6-v2-int8.onnx"
MODEL_SHA256 = "29d4d763297b18999d2b7f9ee8811a557ca6772e5342e6768f043d2d8d4f0fe9"
TOKENIZER_FILE = "all-MiniLM-L6-v2.tokenizer.json"
DIMENSION = 384
MAX_POSITIONS = 512  # BERT position embeddings: the hard ceiling for max_tokens
PRECISIONS = ("int8", "fp32")
MAX_WORKERS = 8  # int8 texts embedded at once, each with one onnxruntime thread


def model_path() -> Path:
    """The bundled int8 `minilm-l6-v2-int8.onnx`."""
    path = Path(str(importlib.resources.files("lenslink.embedders").joinpath("data", MODEL_FILE)))
    if not path.is_file():
        raise EmbedderError(f"the minilm model file is missing: {path}; reinstall lenslink")
    return path


def tokenizer_path() -> Path:
    """The bundled WordPiece tokenizer of all-MiniLM-L6-v2."""
    data = importlib.resources.files("lenslink.embedders").joinpath("data", TOKENIZER_FILE)
    return Path(str(data))


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 hex of a file, computed once per process while its size and mtime hold."""
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def verify_model(path: Path) -> None:
    """Refuse a model file whose hash is not the pinned one (corrupt or swapped)."""
    actual = file_sha256(path)
    if actual != MODEL_SHA256:
        raise EmbedderError(
            f"minilm model hash mismatch at {path}: expected {MODEL_SHA256[:12]}..., "
            f"got {actual[:12]}...; reinstall lenslink"
        )


class MiniLMEmbedder:
    """all-MiniLM-L6-v2: 384-d sentence vectors, mean-pooled and L2-normalised.

    Texts longer than `max_tokens` (counting [CLS] and [SEP]) are truncated;
    `count_tokens` lets the chunker keep lens texts under that limit.
    """

    dimension = DIMENSION

    def __init__(self, *, max_tokens: int = 256, batch_size: int = 16, threads: int | None = None,
                 precision: str = "int8"):
        if precision not in PRECISIONS:
            raise EmbedderError(f"minilm precision must be one of {', '.join(PRECISIONS)}, "
                                f"got {precision!r}")
        if not 2 < max_tokens <= MAX_POSITIONS:
            raise EmbedderError(
                f"minilm max_tokens must be between 3 and {MAX_POSITIONS}, got {max_tokens}"
            )
        if batch_size < 1:
            raise EmbedderError(f"minilm batch_size must be at least 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise EmbedderError(f"minilm threads must be at least 1, got {threads}")
        self.max_tokens = max_tokens
        self.batch_size = batch_size  # texts per embed_batch call from the indexer
        self.precision = precision
        if precision == "fp32":
            from lenslink.embedders.onnx_export import GRAPH_VERSION, WEIGHTS_SHA256, fp32_model

            self.id = f"minilm-l6-v2-fp32:{WEIGHTS_SHA256[:8]}g{GRAPH_VERSION}:{max_tokens}"
            path = fp32_model()  # built once from the verified weights, hash-checked
        else:
            self.id = f"minilm-l6-v2-int8:{MODEL_SHA256[:8]}:{max_tokens}"
            path = model_path()
            verify_model(path)
        self._tokenizer, self._counter = self._load_tokenizers(max_tokens)
        threads = threads or os.cpu_count() or 1
        # Each onnxruntime run embeds one text, without padding: int8 quantises a run's
        # activations with one range, so a text's vector must not depend on batch-mates,
        # and fp32 is faster so too (23.5 against 16 notes/s on 2 cores: a padded batch's
        # activations leave the cache). One thread per run and several runs at once keep
        # the cores busy (docs/performance.md).
        self._workers = min(threads, MAX_WORKERS)
        self._session = self._load_session(path, 1 if self._workers > 1 else threads)
        self._input_names = {i.name for i in self._session.get_inputs()}

    @staticmethod
    def _load_tokenizers(max_tokens: int):
        from tokenizers import Tokenizer

        path = str(tokenizer_path())
        try:
            batch_tok, count_tok = Tokenizer.from_file(path), Tokenizer.from_file(path)
        except Exception as exc:  # the tokenizers library raises plain Exception
            raise EmbedderError(f"cannot load the minilm tokenizer {path}: {exc}") from exc
        # The file itself pins truncation and fixed padding at 128; override both.
        batch_tok.enable_truncation(max_length=max_tokens)
        batch_tok.enable_padding(pad_id=0, pad_token="[PAD]")
        count_tok.no_truncation()
        count_tok.no_padding()
        return batch_tok, count_tok

    @staticmethod
    def _load_session(path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # onnxruntime's arena keeps the peak of every batch shape it has seen (>1 GB after
        # a few 32 x 256-token batches); without it, memory follows the current batch.
        options.enable_cpu_mem_arena = False
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbedderError(f"cannot load the minilm model {path}: {exc}") from exc

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes, [CLS] and [SEP] included, before any truncation."""
        return len(self._counter.encode(text).ids)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Embed `texts`; rows come back in input order, float32, unit length."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if self._workers > 1 and len(texts) > 1:  # onnxruntime runs release the GIL
            with ThreadPoolExecutor(self._workers, thread_name_prefix="lenslink-embed") as pool:
                for i, vector in enumerate(pool.map(lambda text: self._run([text])[0], texts)):
                    out[i] = vector
            return out
        for i, text in enumerate(texts):
            out[i] = self._run([text])[0]
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        feeds = {name: value for name, value in feeds.items() if name in self._input_names}
        hidden = self._session.run(None, feeds)[0]  # last_hidden_state: (n, seq, 384)
        mask = attention_mask[:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
