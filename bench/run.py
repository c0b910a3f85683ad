#!/usr/bin/env python3
"""Run every speed benchmark and print a summary table next to the issue's targets.

Each benchmark runs in its own process (so its peak memory is its own) and writes its
numbers as JSON; this script prints each one's full output as it goes, then the table.
bench/quality.py (ranking quality) is separate and not run here.

Usage:
  python bench/run.py            # full sizes (100,000 and 10,000-note vaults, the whole real vault)
  python bench/run.py --quick    # small sizes, a few minutes
  python bench/run.py --only query_speed index_speed --tmp /dev/shm
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

FULL = {
    "synth": ["--notes", "100000"],
    "embed_precision": ["--notes", "300"],
    "llm_index": [],
    "index_speed": [],
    "query_speed": ["--notes", "10000", "--queries", "200"],
    "daemon_latency": ["--notes", "10000", "--burst", "1000", "--requests", "200"],
    "scale": ["--notes", "100000", "--llm", "--train", "--cold"],
}
QUICK = {
    "synth": ["--notes", "10000"],
    "embed_precision": ["--notes", "50", "--rounds", "2"],
    "llm_index": ["--limit", "60"],
    "index_speed": ["--limit", "100"],
    "query_speed": ["--notes", "1000", "--queries", "100", "--train-timeout", "600"],
    "daemon_latency": ["--notes", "500", "--burst", "20", "--requests", "100", "--timeout", "600"],
    "scale": ["--notes", "3000", "--llm", "--train", "--cold", "--requests", "50"],
}


def run_one(name: str, extra: list[str], tmp: str | None, out_dir: Path) -> dict | None:
    json_path = out_dir / f"{name}.json"
    if name == "synth":
        vault = Path(tempfile.mkdtemp(prefix="lenslink-synth-", dir=tmp)) / "vault"
        cmd = [sys.executable, str(common.BENCH / "synth.py"), str(vault), *extra]
    else:
        cmd = [sys.executable, str(common.BENCH / f"{name}.py"), *extra, "--json", str(json_path)]
        if tmp:
            cmd += ["--tmp", tmp]
    common.log(f"running {common.show(cmd)}")
    start = time.perf_counter()
    proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE)
    seconds = time.perf_counter() - start
    print(proc.stdout, flush=True)
    if name == "synth":
        import shutil
        shutil.rmtree(vault.parent, ignore_errors=True)
        return {"benchmark": "synth", "command": common.show(cmd), "seconds": round(seconds, 1),
                "output": proc.stdout.strip()}
    if proc.returncode != 0 or not json_path.exists():
        common.log(f"{name} failed with exit code {proc.returncode}")
        return None
    return json.loads(json_path.read_text(encoding="utf-8"))


def get(d: dict, *keys, default="-"):
    for k in keys:
        if not isinstance(d, dict):
            return default
        match = k if k in d else next((key for key in d if key.startswith(k)), None)
        if match is None:
            return default
        d = d[match]
    return d


def last(value):
    return value[-1] if isinstance(value, list) and value else value


def secs(value) -> str:
    """A number of seconds as `12.3 s`; anything else (a timeout message) as it is."""
    return f"{value} s" if isinstance(value, (int, float)) else str(value)


def summary(results: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows."""
    rows = []
    s = results.get("synth")
    if s:
        rows.append(("synth.py: generate the vault", f"{s['seconds']} s (whole process)",
                     "100,000 notes well under a minute"))
    i = results.get("index_speed")
    if i:
        real = i.get("real_model", {})
        if real:
            full = real.get("full_index", {})
            rows += [
                ("real model: model load", secs(real.get('model_load_s')), ""),
                (f"real model: full index ({full.get('notes')} notes, {full.get('texts_embedded')} texts)",
                 f"{full.get('seconds')} s: {full.get('notes_per_s')} notes/s, "
                 f"{get(full, 'texts_per_s (embed stage)')} texts/s", ""),
                ("real model: unchanged re-index, process",
                 secs(get(real, 'reindex_process', 'seconds')), ""),
                ("real model: unchanged re-index, in-process (model loaded / fresh Vault)",
                 f"{real.get('reindex_in_process_model_loaded_s')} s / "
                 f"{real.get('reindex_in_process_fresh_vault_s')} s", ""),
            ]
        syn = i.get("synthetic_reindex", {})
        rows += [
            ("1,000 synthetic notes: unchanged re-index, process",
             secs(get(syn, 'reindex_process', 'seconds')), "< 2 s"),
            ("1,000 synthetic notes: unchanged re-index, in-process",
             secs(get(syn, 'reindex_in_process', 'seconds')), "< 2 s"),
            ("1,000 synthetic notes: re-index after touching every note",
             secs(get(syn, 'reindex_after_touching_every_note', 'seconds')), ""),
        ]
    q = results.get("query_speed")
    if q:
        n = q.get("notes")
        lens = next((k for k in q.get("unsupervised", {}) if k.startswith("related (")), "related")
        rows += [
            (f"{n} notes: open store", secs(q.get('open_store_s')), ""),
            (f"{n} notes: VaultIndex.load (with calibration)", secs(get(q, 'vaultindex_load', 'seconds')), ""),
            (f"{n} notes: {lens}, unsupervised p50 / p99",
             f"{get(q, 'unsupervised', lens, 'p50_ms')} / {get(q, 'unsupervised', lens, 'p99_ms')} ms",
             "< 50 ms"),
            (f"{n} notes: render_block p50 / p99",
             f"{get(q, 'unsupervised', 'render_block', 'p50_ms')} / "
             f"{get(q, 'unsupervised', 'render_block', 'p99_ms')} ms", ""),
            (f"{n} notes: train", secs(get(q, 'learned', 'train')), ""),
            (f"{n} notes: load with trained models", secs(get(q, 'learned', 'vaultindex_load_trained', 'seconds')), ""),
            (f"{n} notes: first learned query", secs(get(q, 'learned', 'first_learned_query_s')), ""),
            (f"{n} notes: {lens}, learned p50 / p99",
             f"{get(q, 'learned', lens, 'p50_ms')} / {get(q, 'learned', lens, 'p99_ms')} ms", "< 50 ms"),
            (f"{n} notes: peak RSS", f"{q.get('maxrss_mb')} MB", ""),
        ]
    e = results.get("embed_precision")
    if e:
        rows += [
            ("minilm 8-bit / fp32 notes/s", f"{get(e, 'int8_notes_per_s')} / {get(e, 'fp32_notes_per_s')}"
             f" = {get(e, 'int8 / fp32 speed')}x", ">= 2.5x"),
            ("minilm 8-bit vs fp32 cosine, mean / worst",
             f"{get(e, 'cosine int8 to fp32', 'mean')} / {get(e, 'cosine int8 to fp32', 'min')}", ">= 0.995"),
        ]
    li = results.get("llm_index")
    if li:
        rows.append((f"full index of {li.get('notes')} real notes: llm embed-multi / lenslink index",
                     f"{get(li, 'llm embed-multi', 'seconds')} s / {get(li, 'lenslink index', 'seconds')} s"
                     f" = {li.get('llm seconds / lenslink seconds')}x", ">= 2.5x"))
    sc = results.get("scale")
    if sc:
        n = sc.get("notes")
        rows += [
            (f"{n} notes: first index, peak RSS", f"{get(sc, 'first_index', 'seconds')} s, "
             f"{get(sc, 'first_index', 'peak_rss_mb')} MB", "peak < 1 GB"),
            (f"{n} notes: unchanged index (restart sync), median", secs(get(sc, 'restart_index', 'median_s')), ""),
            (f"{n} notes: daemon start until ready", secs(get(sc, 'daemon', 'start_until_ready_s')), "< 5 s"),
            (f"{n} notes: daemon RSS ready / right after 200 requests / idle after them",
             f"{get(sc, 'daemon', 'idle_rss_mb (ready')} / {get(sc, 'daemon', 'rss_mb (right after')} / "
             f"{get(sc, 'daemon', 'idle_rss_mb (after')} MB", "idle < 400 MB"),
            (f"{n} notes: daemon start without a snapshot (built apart) until ready, idle RSS after requests",
             f"{secs(get(sc, 'daemon_cold', 'start_until_ready_s'))}, "
             f"{get(sc, 'daemon_cold', 'idle_rss_mb (after')} MB", "< 400 MB"),
            (f"{n} notes: GET /v1/related p50 / p99", f"{get(sc, 'daemon', '/v1/related', 'p50_ms')} / "
             f"{get(sc, 'daemon', '/v1/related', 'p99_ms')} ms", "< 20 / < 50 ms"),
            (f"{n} notes: CLI related (daemon serving / alone) vs llm similar",
             f"{get(sc, 'daemon', 'cli_related_while_serving', 'median_s')} s / "
             f"{get(sc, 'cli_related (snapshot', 'median_s')} s vs {get(sc, 'llm', 'similar', 'median_s')} s",
             ">= 5x faster"),
            (f"{n} notes: train (every lens)", secs(get(sc, 'train', 'seconds')), "< 2 min"),
            (f"{n} notes: learned GET /v1/related p50 / p99", f"{get(sc, 'daemon_trained', '/v1/related', 'p50_ms')}"
             f" / {get(sc, 'daemon_trained', '/v1/related', 'p99_ms')} ms", "< 50 ms"),
        ]
    d = results.get("daemon_latency")
    if d:
        n = d.get("notes")
        rows += [
            (f"daemon, {n} notes: start until ready", secs(get(d, 'startup_ready_s')), ""),
            (f"daemon, {n} notes: GET /v1/related p50 / p99",
             f"{get(d, 'api', '/v1/related', 'p50_ms')} / {get(d, 'api', '/v1/related', 'p99_ms')} ms", ""),
            (f"daemon, {n} notes: one edit until /v1/related changed",
             secs(get(d, 'single_edit', 'until /v1/related changed_s')), ""),
            (f"daemon, {n} notes: one edit until block on disk",
             secs(get(d, 'single_edit', 'until block on disk_s')), ""),
            (f"daemon, {n} notes: burst of {d.get('burst_notes')} until every block on disk",
             secs(get(d, 'burst', 'until every block on disk_s')), ""),
            (f"daemon, {n} notes: burst, (seconds, blocks on disk) when the wait ended",
             str(last(get(d, 'burst', 'blocks on disk over time'))), ""),
            (f"daemon, {n} notes: burst, texts embedded more than once",
             f"{get(d, 'burst', 'texts embedded more than once')} of {get(d, 'burst', 'distinct texts')}", "0"),
        ]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Usage:")[1])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--only", nargs="+", choices=list(FULL), help="run only these")
    parser.add_argument("--tmp", help="folder for temporary vaults and databases")
    parser.add_argument("--json", help="write every benchmark's numbers to this JSON file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    machine = common.machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), flush=True)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="lenslink-bench-") as out:
        for name in args.only or list(plan):
            found = run_one(name, plan[name], args.tmp, Path(out))
            if found:
                results[name] = found
    rows = summary(results)
    width = max([len(r[0]) for r in rows] + [7])
    vwidth = max([len(r[1]) for r in rows] + [5])
    print(f"\nSummary ({'--quick' if args.quick else 'full sizes'}; load average at the end "
          f"{common.load_text()}):\n")
    print(f"| {'measure':<{width}} | {'value':<{vwidth}} | target |")
    print(f"|{'-' * (width + 2)}|{'-' * (vwidth + 2)}|--------|")
    for measure, value, target in rows:
        print(f"| {measure:<{width}} | {value:<{vwidth}} | {target} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
