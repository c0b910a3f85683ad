#!/usr/bin/env python3
"""Full index of a real vault: `lenslink index` against `llm embed-multi` (simonw/llm
0.36, a bench-only dependency) with the same model, each as a whole process on its own
copy of ../shared/vaults/lesleylai-garden, then each again on the unchanged vault.

llm runs lenslink's fp32 all-MiniLM-L6-v2 through bench/llm_plugin.py and embeds each
file once (truncated at 256 tokens); lenslink runs its default (8-bit model, the vault's
lenses: with the default config one text per note and lens, chunked long notes, texts
shared between lenses embedded once). Both counts are printed.

Target (issue): lenslink at least 2.5x faster.

Usage:
  python bench/llm_index.py                 # the whole vault
  python bench/llm_index.py --limit 200     # a seeded sample
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from index_speed import DEFAULT_VAULT, copy_vault  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vault", type=Path, default=DEFAULT_VAULT)
    parser.add_argument("--limit", type=int, help="a seeded sample of N notes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    out: dict = {}
    with common.workdir(args.tmp, args.keep, "lenslink-llm-") as work, common.data_dir(work / "data"):
        vault = work / "vault"
        out["notes"] = copy_vault(args.vault, vault, args.limit, args.seed)
        env = {**os.environ, "LLM_USER_PATH": str(work / "llm-home")}
        lens_cmd = [common.lenslink_bin(), "index", str(vault), "--db", str(work / "lenslink.db")]
        llm_cmd = [sys.executable, str(common.BENCH / "llm_plugin.py"), "embed-multi", "notes",
                   "--files", str(vault), "**/*.md", "-m", "lenslink-minilm-fp32",
                   "-d", str(work / "llm.db")]
        for name, cmd in (("lenslink index (8-bit)", lens_cmd), ("llm embed-multi (fp32)", llm_cmd)):
            common.log(f"{name}: {common.show(cmd)}")
            first = common.run_measured(cmd, env)
            again = common.run_measured(cmd, env)
            out[name] = {"command": common.show(cmd), "seconds": first["seconds"],
                         "notes_per_s": round(out["notes"] / first["seconds"], 2),
                         "peak_rss_mb": first["peak_rss_mb"], "unchanged_again_s": again["seconds"],
                         "returncode": first["returncode"],
                         "output": (first["stdout"].strip().splitlines() or [""])[-1][:200]}
        with sqlite3.connect(work / "llm.db") as db:
            out["llm embed-multi (fp32)"]["texts_embedded"] = db.execute(
                "SELECT count(*) FROM embeddings").fetchone()[0]
        a, b = out["lenslink index (8-bit)"]["seconds"], out["llm embed-multi (fp32)"]["seconds"]
        out["llm seconds / lenslink seconds"] = round(b / a, 2)
        out["target"] = ">= 2.5"
    common.emit("llm_index", out, args.json)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
