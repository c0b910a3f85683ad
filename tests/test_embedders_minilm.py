"""The offline default embedder and the registry around it."""

import subprocess
import sys

import numpy as np
import pytest

from lenslink import embedders
from lenslink.embedders import minilm
from lenslink.errors import EmbedderError

RICH = "Python can make you rich."
POCKETS = "Mastering Python can fill your pockets."
ITCH = "Python can make you itch."


@pytest.fixture(scope="module")
def model():
    return embedders.get_embedder("minilm")


def test_importing_the_registry_loads_no_backend():
    code = (
        "import sys, lenslink.embedders as e; e.available(); "
        "print(sorted(m for m in ('onnxruntime', 'openai', 'tokenizers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_lists_builtins_and_rejects_unknown_names():
    assert {"minilm", "openai"} <= set(embedders.available())
    with pytest.raises(EmbedderError, match="unknown embedder 'nope'; available: .*minilm.*openai"):
        embedders.get_embedder("nope")


def test_register_and_embed_all_report_progress():
    class Counting:
        id, dimension, batch_size = "counting", 2, 3

        def __init__(self):
            self.calls = []

        def embed_batch(self, texts):
            self.calls.append(list(texts))
            return np.tile(np.array([[1.0, 0.0]], np.float32), (len(texts), 1))

    fake = Counting()
    embedders.register("counting-test", lambda: fake)
    try:
        done = []
        vectors = embedders.embed_all(embedders.get_embedder("counting-test"), list("abcdefg"), done.append)
    finally:
        embedders._FACTORIES.pop("counting-test")
    assert fake.calls == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert done == [3, 6, 7]
    assert vectors.shape == (7, 2)
    assert embedders.embed_all(fake, []).shape == (0, 2)


def test_bad_option_is_an_embedder_error():
    with pytest.raises(EmbedderError, match="bad options for embedder 'minilm'"):
        embedders.get_embedder("minilm", colour="blue")


@pytest.mark.model
def test_identity_and_shape(model):
    assert model.id == f"minilm-l6-v2-int8:{minilm.MODEL_SHA256[:8]}:256"
    assert (model.dimension, model.batch_size, model.max_tokens) == (384, 16, 256)


@pytest.mark.model
def test_similarity_ranks_paraphrase_above_lookalike(model):
    rich, pockets, itch = model.embed_batch([RICH, POCKETS, ITCH])
    paraphrase, lookalike = float(rich @ pockets), float(rich @ itch)
    assert 0.55 < paraphrase < 0.75
    assert 0.40 < lookalike < 0.60
    assert paraphrase > lookalike


@pytest.mark.model
def test_rows_are_unit_float32_in_input_order(model):
    texts = ["a much longer sentence about sailing boats on a windy lake " * 3, "", "cats", RICH]
    vectors = model.embed_batch(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for text, row in zip(texts, vectors):
        np.testing.assert_allclose(model.embed_batch([text])[0], row, atol=1e-5)


@pytest.mark.model
def test_texts_embedded_at_once_give_the_vectors_of_one_at_a_time():
    serial, parallel = minilm.MiniLMEmbedder(threads=1), minilm.MiniLMEmbedder(threads=3)
    assert (serial._workers, parallel._workers) == (1, 3)
    texts = [f"note {i} about " + "sailing boats " * (7 * i % 11) for i in range(12)] + [RICH, ""]
    np.testing.assert_array_equal(parallel.embed_batch(texts), serial.embed_batch(texts))


@pytest.mark.model
def test_sub_batches_give_the_same_vectors():
    small = minilm.MiniLMEmbedder(batch_size=2, threads=1)
    texts = [f"note {i} " + "words " * i for i in range(5)]
    whole = embedders.get_embedder("minilm").embed_batch(texts)
    np.testing.assert_allclose(small.embed_batch(texts), whole, atol=1e-5)


@pytest.mark.model
def test_long_text_is_truncated_not_fatal(model):
    long_text = "lenses link notes by meaning " * 200
    assert model.count_tokens(long_text) > 256
    vector = model.embed_batch([long_text])
    assert vector.shape == (1, 384) and np.isfinite(vector).all()
    # Truncation keeps only the first 256 tokens, so extra tail changes nothing.
    np.testing.assert_allclose(model.embed_batch([long_text + " and more tail"]), vector, atol=1e-5)


@pytest.mark.model
def test_count_tokens_includes_special_tokens(model):
    assert model.count_tokens("") == 2  # [CLS] [SEP]
    assert model.count_tokens("hello world") == 4


@pytest.mark.model
def test_max_tokens_is_part_of_the_id():
    assert minilm.MiniLMEmbedder(max_tokens=128).id.endswith(":128")
    with pytest.raises(EmbedderError, match="max_tokens"):
        minilm.MiniLMEmbedder(max_tokens=1000)


def test_hash_mismatch_is_refused(monkeypatch):
    monkeypatch.setattr(minilm, "MODEL_SHA256", "0" * 64)
    with pytest.raises(EmbedderError, match="hash mismatch"):
        minilm.MiniLMEmbedder()


def test_hash_is_computed_once_per_process():
    minilm._sha256.cache_clear()
    path = minilm.model_path()
    assert minilm.file_sha256(path) == minilm.file_sha256(path) == minilm.MODEL_SHA256
    assert minilm._sha256.cache_info().misses == 1
