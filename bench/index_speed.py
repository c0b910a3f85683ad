#!/usr/bin/env python3
"""Index speed: full-index throughput with the real model, and the unchanged re-index.

1. Real vault, default embedder (`minilm`): a temporary copy of
   ../shared/vaults/lesleylai-garden (or --vault; --limit N copies a seeded sample of
   N notes), indexed into a fresh database under a temporary LENSLINK_DATA_DIR. Prints
   the model load time, notes/s over the whole run, texts/s of the embed stage, and
   where the embed stage's time went (the model vs the store's queries).
2. The same vault indexed again, unchanged (must embed nothing): as a whole process
   (`lenslink index`, which also pays interpreter start-up, imports and the model load)
   and in-process (a fresh `Vault`, and a `Vault` whose model is already loaded).
3. A synthetic 1,000-note vault (bench/synth.py) indexed with the cheap embedder
   (bench/cheap_embedder.py), then indexed again unchanged: as a process and in-process,
   with a breakdown; and once more after touching every note (mtime changed, content
   not: every note is read and hashed, nothing embedded).

Target (issue): the second index of 1,000 notes under 2 s.

Usage:
  python bench/index_speed.py                         # whole lesleylai-garden vault
  python bench/index_speed.py --limit 300             # a quicker real-model run
  python bench/index_speed.py --skip-real             # only the synthetic re-index
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cheap_embedder  # noqa: E402
import common  # noqa: E402
import synth  # noqa: E402

from lenslink import index as index_mod, store as store_mod  # noqa: E402
from lenslink import notes as notes_mod  # noqa: E402
from lenslink.vault import Vault  # noqa: E402

DEFAULT_VAULT = common.SHARED / "vaults" / "lesleylai-garden"
TARGET_REINDEX_S = 2.0


def copy_vault(src: Path, dst: Path, limit: int | None, seed: int) -> int:
    """Copy the vault's notes (all, or a seeded sample of `limit`) and its config."""
    found = list(notes_mod.scan_vault(src).paths)
    if limit and limit < len(found):
        found = sorted(random.Random(seed).sample(found, limit))
    for rel in found:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)  # copyfile: no read-only mode bits
    for extra in (".lenslink.toml", ".obsidian/app.json"):
        if (src / extra).is_file():
            (dst / extra).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / extra, dst / extra)
    return len(found)


def sync_probe(embedder_cls=None) -> common.Probe:
    """Time the stages of an index run by wrapping them (skipped if renamed)."""
    probe = common.Probe()
    targets = [(notes_mod, "scan_vault", "scan"),
               (store_mod.Store, "note_states", "store: note states"),
               (index_mod, "_sync_note", "stat / read / parse / store each note"),
               (index_mod, "_relink", "relink"),
               (index_mod, "active_lenses", "active lenses"),
               (store_mod.Store, "missing_texts", "store: missing texts"),
               (store_mod.Store, "texts_of", "store: texts of a batch"),
               (store_mod.Store, "put_vectors", "store: put vectors"),
               (store_mod.Store, "prune_vectors", "store: prune vectors")]
    if embedder_cls is not None:
        targets.append((embedder_cls, "embed_batch", "embedder: embed_batch"))
    for owner, attr, label in targets:
        if hasattr(owner, attr):
            probe.wrap(owner, attr, label)
    return probe


def real_vault(args, work: Path) -> dict:
    out: dict = {}
    copy = work / "real"
    n = copy_vault(Path(args.vault), copy, args.limit, args.seed)
    db = work / "real.db"
    out["vault"] = f"{args.vault} ({n} notes{' sampled, --limit' if args.limit else ''}; a temporary copy)"
    common.log(f"real vault: {n} notes; loading the model")
    with Vault(copy, db=db) as v:
        with common.Timer() as t:
            embedder = v.embedder
        out["embedder"] = embedder.id
        out["model_load_s"] = round(t.seconds, 2)
        probe = sync_probe(type(embedder))
        clock = common.StageClock()
        common.log("full index with the real model")
        try:
            with common.Timer() as t:
                report = v.index(progress=clock)
        finally:
            probe.restore()
        read_end = clock.last.get("read", clock.start)
        embed_s = clock.last.get("embed", read_end) - read_end
        model_s = probe.seconds.get("embedder: embed_batch", 0.0)
        out["full_index"] = {
            "seconds": round(t.seconds, 1), "notes": report.scanned, "texts_embedded": report.embedded,
            "notes_per_s": round(report.scanned / t.seconds, 2),
            "texts_per_s (embed stage)": round(report.embedded / embed_s, 2) if embed_s else None,
            "texts_per_s (model alone)": round(report.embedded / model_s, 2) if model_s else None,
            "read_stage_s": round(read_end - clock.start, 2), "embed_stage_s": round(embed_s, 1),
            "stages": probe.report(), "maxrss_mb": round(common.maxrss_mb(), 1)}
        common.log("second index, in-process, model already loaded")
        with common.Timer() as t:
            again = v.index()
        out["reindex_in_process_model_loaded_s"] = round(t.seconds, 3)
        out["reindex_embedded"] = again.embedded
    common.log("second index, in-process, fresh Vault (loads the model)")
    with common.Timer() as t:
        with Vault(copy, db=db) as v:
            v.index()
    out["reindex_in_process_fresh_vault_s"] = round(t.seconds, 3)
    cmd = [common.lenslink_bin(), "index", str(copy), "--db", str(db)]
    common.log("second index as a process")
    seconds, stdout = common.run_timed(cmd)
    out["reindex_process"] = {"seconds": round(seconds, 3), "command": common.show(cmd),
                              "output": stdout.splitlines()[-1] if stdout else ""}
    seconds, _ = common.run_timed([common.lenslink_bin(), "--version"])
    out["process_floor_s (lenslink --version: start-up and imports)"] = round(seconds, 3)
    return out


def synthetic_reindex(args, work: Path) -> dict:
    out: dict = {"target": f"second index of 1,000 notes < {TARGET_REINDEX_S:.0f} s"}
    vault_dir, db = work / "synth", work / "synth.db"
    synth.generate(vault_dir, args.synthetic_notes, args.seed)
    cheap_embedder.register()
    out["vault"] = f"bench/synth.py, {args.synthetic_notes} notes, seed {args.seed}"
    with Vault(vault_dir, db=db, embedder=cheap_embedder.NAME) as v:
        with common.Timer() as t:
            first = v.index()
    out["first_index_cheap_embedder_s"] = round(t.seconds, 2)
    out["texts"] = first.embedded
    cmd = [sys.executable, str(common.CHEAP), "index", str(vault_dir), "--db", str(db),
           "--embedder", cheap_embedder.NAME]
    runs = []
    for _ in range(args.repeat):
        seconds, stdout = common.run_timed(cmd)
        runs.append(seconds)
    out["reindex_process"] = {"seconds (best of %d)" % len(runs): round(min(runs), 3),
                              "all": [round(s, 3) for s in runs], "command": common.show(cmd),
                              "output": stdout.splitlines()[-1] if stdout else ""}
    probe = sync_probe()
    with common.Timer() as t_all:
        with Vault(vault_dir, db=db, embedder=cheap_embedder.NAME) as v:
            with common.Timer() as t:
                again = v.index()
    probe.restore()
    out["reindex_in_process"] = {"seconds": round(t.seconds, 3),
                                 "with_open_and_close_s": round(t_all.seconds, 3),
                                 "embedded": again.embedded, "stages": probe.report()}
    for rel in notes_mod.scan_vault(vault_dir).paths:
        os.utime(vault_dir / rel)  # new mtime, same content: read and hash everything
    probe = sync_probe()
    with Vault(vault_dir, db=db, embedder=cheap_embedder.NAME) as v:
        with common.Timer() as t:
            touched = v.index()
    probe.restore()
    out["reindex_after_touching_every_note"] = {"seconds": round(t.seconds, 3),
                                                "embedded": touched.embedded,
                                                "stages": probe.report()}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Usage:")[1])
    parser.add_argument("--vault", default=str(DEFAULT_VAULT), help="real vault (copied, never written)")
    parser.add_argument("--limit", type=int, help="index only a seeded sample of N notes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-real", action="store_true", help="skip the real-model part")
    parser.add_argument("--synthetic-notes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="process re-index runs (best reported)")
    parser.add_argument("--tmp", help="folder for temporary copies and databases")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    results: dict = {}
    with common.workdir(args.tmp, args.keep, "lenslink-index-") as work, \
            common.data_dir(work / "data"):
        if not args.skip_real:
            results["real_model"] = real_vault(args, work)
        results["synthetic_reindex"] = synthetic_reindex(args, work)
    common.emit("index_speed", results, args.json)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
