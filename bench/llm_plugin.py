#!/usr/bin/env python3
"""lenslink's embedders as an `llm` plugin, for the side-by-side benchmark (bench only).

Registers in simonw/llm:
- `lenslink-minilm-fp32`: lenslink's fp32 all-MiniLM-L6-v2 (`MiniLMEmbedder(precision="fp32")`),
  so that `llm embed-multi` runs the same model as lenslink's fp32 loader;
- `bench-bow`: the cheap hashed bag-of-words embedder of bench/cheap_embedder.py, to fill
  an llm collection with the same vectors lenslink stores for a synthetic vault.

Run as a script, it is the `llm` command with these registered (llm itself is a
bench-only dependency: `pip install llm==0.36`):

  LLM_USER_PATH=/tmp/llm python bench/llm_plugin.py embed-multi notes --files VAULT '**/*.md' \
      -m lenslink-minilm-fp32 -d notes.db
  LLM_USER_PATH=/tmp/llm python bench/llm_plugin.py similar notes topics/x.md -d notes.db
"""
from __future__ import annotations

import sys
from pathlib import Path

import llm

sys.path.insert(0, str(Path(__file__).resolve().parent))


class LenslinkMiniLM(llm.EmbeddingModel):
    model_id = "lenslink-minilm-fp32"
    batch_size = 16

    def __init__(self):
        self._model = None

    def embed_batch(self, items):
        if self._model is None:
            from lenslink.embedders.minilm import MiniLMEmbedder
            self._model = MiniLMEmbedder(precision="fp32")
        return [v.tolist() for v in self._model.embed_batch(list(items))]


class BenchBow(llm.EmbeddingModel):
    model_id = "bench-bow"
    batch_size = 256

    def __init__(self):
        from cheap_embedder import CheapEmbedder
        self._model = CheapEmbedder()

    def embed_batch(self, items):
        return [v.tolist() for v in self._model.embed_batch(list(items))]


@llm.hookimpl
def register_embedding_models(register):
    register(LenslinkMiniLM())
    register(BenchBow())


if __name__ == "__main__":
    import llm.cli
    import llm.plugins

    llm.plugins.pm.register(sys.modules[__name__], name="lenslink-bench")
    llm.cli.cli()
