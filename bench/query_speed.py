#!/usr/bin/env python3
"""Query speed: `related` for one note over a synthetic vault (default 10,000 notes).

Steps (all in this process, numbers printed; no timed assertions):
  1. generate the vault (bench/synth.py) and index it with the cheap 384-d embedder
     (bench/cheap_embedder.py), so the model does not dominate: the setup time is the
     index throughput of everything but the model;
  2. open the store (`Vault(...)`) and load the ranking state (`VaultIndex.load`, where
     calibration happens), timed separately, with a breakdown by stage;
  3. per-query latency (p50/p99) of `Vault.related` for random notes under the default
     lens, of all lenses of a note, and of `render_block` (what the daemon writes);
  4. `train` (the learned ranker), its time, the load time with trained models, the first
     learned query (features are built lazily) and learned latency p50/p99;
  5. peak memory (ru_maxrss; tracemalloc of the load with --tracemalloc).

Target (issue): under 50 ms per query once the store is open.

Usage:
  python bench/query_speed.py                       # 10,000 notes, 200 queries
  python bench/query_speed.py --notes 2000 --queries 100 --train-timeout 600
"""
from __future__ import annotations

import argparse
import random
import signal
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cheap_embedder  # noqa: E402
import common  # noqa: E402
import synth  # noqa: E402

from lenslink import lexical, rank, store as store_mod  # noqa: E402
from lenslink.vault import Vault  # noqa: E402

TARGET_MS = 50.0


class TrainingTimeout(Exception):
    pass


def load_probe() -> common.Probe:
    """Time the stages of `VaultIndex.load` by wrapping them (skipped if renamed)."""
    probe = common.Probe()
    for owner, attr, label in [
            (store_mod.Store, "lens_vectors", "store: lens vectors"),
            (store_mod.Store, "notes", "store: notes"),
            (store_mod.Store, "links", "store: links"),
            (store_mod.Store, "lex_texts", "store: lexical texts"),
            (store_mod.Store, "models", "store: models"),
            (lexical.TfIdf, "__init__", "TfIdf build"),
            (lexical.Mentions, "__init__", "Mentions build"),
            (rank.VaultIndex, "_view", "lens views (means, centring, filters)"),
            (rank.VaultIndex, "_calibrate", "calibration")]:
        if hasattr(owner, attr):
            probe.wrap(owner, attr, label)
    return probe


def timed_load(vault: Vault, tracemalloc_on: bool) -> dict:
    probe = load_probe()
    if tracemalloc_on:
        tracemalloc.start()
    try:
        with common.Timer() as t:
            vault.refresh()
    finally:
        probe.restore()
    out = {"seconds": round(t.seconds, 3), "stages": probe.report()}
    if tracemalloc_on:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["tracemalloc_peak_mb"] = round(peak / 2**20, 1)
    return out


def latencies(func, paths: list[str]) -> dict:
    ms = []
    for p in paths:
        start = time.perf_counter()
        func(p)
        ms.append((time.perf_counter() - start) * 1000)
    out = common.percentiles(ms)
    out["under_target"] = f"{sum(m < TARGET_MS for m in ms)}/{len(ms)}"
    return out


def query_set(vault: Vault, paths: list[str]) -> dict:
    lenses = vault.config.names
    return {
        f"related ({lenses[0]} lens)": latencies(lambda p: vault.related(p), paths),
        f"related, every lens ({', '.join(lenses)})":
            latencies(lambda p: [vault.related(p, lens) for lens in lenses], paths),
        "render_block (the daemon's write)": latencies(vault.render_block, paths),
    }


def index_memory(vault: Vault) -> float:
    """MB held in the VaultIndex's numpy arrays (vectors, postings)."""
    ranking = vault.ranking()
    arrays = {}  # lenses of the same texts share arrays: count each once
    for view in ranking.views.values():
        for name in ("centred", "raw", "centring", "chunk_vectors", "chunk_start"):
            arr = getattr(view, name, None)
            arrays[id(arr)] = getattr(arr, "nbytes", 0)
    for name in ("doc_terms", "doc_weights", "term_docs", "term_weights"):
        arr = getattr(ranking.tfidf, name, None)
        arrays[id(arr)] = getattr(arr, "nbytes", 0)
    return round(sum(arrays.values()) / 2**20, 1)


def run(args) -> dict:
    cheap_embedder.register()
    results: dict = {"notes": args.notes, "queries": args.queries, "target": f"< {TARGET_MS:.0f} ms per query after the store is open"}
    with common.workdir(args.tmp, args.keep, "lenslink-query-") as work, \
            common.data_dir(work / "data"):
        vault_dir, db = work / "vault", work / "index.db"
        common.log(f"generating {args.notes} notes")
        with common.Timer() as t:
            info = synth.generate(vault_dir, args.notes, args.seed)
        results["vault"] = {"generated_in_s": round(t.seconds, 2), "links": info["links"],
                            "long_notes": info["long_notes"], "mb": round(info["bytes"] / 1e6, 1)}
        common.log("indexing with the cheap embedder")
        with Vault(vault_dir, db=db, embedder=cheap_embedder.NAME) as v:
            clock = common.StageClock()
            with common.Timer() as t:
                report = v.index(progress=clock)
        read_end = clock.last.get("read", clock.start)
        results["setup_index_cheap_embedder"] = {
            "seconds": round(t.seconds, 2), "texts": report.embedded,
            "read_stage_s": round(read_end - clock.start, 2),
            "embed_stage_s": round(clock.last.get("embed", read_end) - read_end, 2),
            "notes_per_s": round(report.scanned / t.seconds, 1)}

        rng = random.Random(args.seed)
        with common.Timer() as t_open:
            vault = Vault(vault_dir, db=db, embedder=cheap_embedder.NAME)
        try:
            results["open_store_s"] = round(t_open.seconds, 3)
            common.log("loading the VaultIndex (unsupervised: calibration runs here)")
            results["vaultindex_load"] = timed_load(vault, args.tracemalloc)
            results["index_arrays_mb"] = index_memory(vault)
            results["maxrss_after_load_mb"] = round(common.maxrss_mb(), 1)
            sources = vault.ranking().lens_notes(vault.config.names[0])
            paths = rng.sample(sources, min(args.queries, len(sources)))
            vault.related(paths[0])  # warm-up (first-call imports, caches)
            common.log(f"{len(paths)} unsupervised queries")
            results["unsupervised"] = query_set(vault, paths)
            results["maxrss_after_queries_mb"] = round(common.maxrss_mb(), 1)

            if args.train_timeout > 0:
                results["learned"] = train_and_query(vault, vault_dir, db, paths, args)
        finally:
            vault.close()
    results["maxrss_mb"] = round(common.maxrss_mb(), 1)
    return results


def train_and_query(vault: Vault, vault_dir: Path, db: Path, paths: list[str], args) -> dict:
    out: dict = {}
    common.log(f"training (stopped after {args.train_timeout} s)")

    def on_alarm(signum, frame):
        raise TrainingTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.train_timeout)
    try:
        with common.Timer() as t:
            reports = vault.train()
        signal.alarm(0)
    except TrainingTimeout:
        out["train"] = f"did not finish within {args.train_timeout} s (stopped)"
        return out
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out["train_s (includes the reload at its end)"] = round(t.seconds, 2)
    out["lenses"] = {name: ("trained on %s pairs" % r.get("pairs") if r.get("trained") else
                            f"not trained: {r.get('reason')}") for name, r in reports.items()}
    out["maxrss_after_train_mb"] = round(common.maxrss_mb(), 1)
    with Vault(vault_dir, db=db, embedder=cheap_embedder.NAME) as fresh:
        common.log("loading the VaultIndex with trained models")
        out["vaultindex_load_trained"] = timed_load(fresh, False)
        with common.Timer() as t:
            fresh.related(paths[0])
        out["first_learned_query_s (builds pair features)"] = round(t.seconds, 3)
        first_all = time.perf_counter()
        for lens in fresh.config.names[1:]:
            fresh.related(paths[0], lens)
        out["first_query_other_lenses_s"] = round(time.perf_counter() - first_all, 3)
        common.log(f"{len(paths)} learned queries")
        out.update(query_set(fresh, paths))
    out["maxrss_after_learned_queries_mb"] = round(common.maxrss_mb(), 1)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Usage:")[1])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-timeout", type=int, default=1800, metavar="S",
                        help="stop training after S seconds (0: skip training)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace Python allocations during the load (slower load)")
    parser.add_argument("--tmp", help="folder for the temporary vault and database")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    results = run(args)
    common.emit("query_speed", results, args.json)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
