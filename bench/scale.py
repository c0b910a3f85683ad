#!/usr/bin/env python3
"""Scale: a synthetic vault of 100,000 notes (bench/synth.py), the cheap embedder, and
every process measured whole (wall seconds and its own peak RSS).

1. first index (`lenslink index`), then the restart on the unchanged vault: nothing
   embedded, no note re-read (size and mtime unchanged);
2. `lenslink related NOTE` as a whole process: the first one (builds the ranking and
   saves its snapshot) and the next ones (load the snapshot);
3. the daemon (`lenslink serve`): start until ready, RSS when ready, `GET /v1/related`
   p50/p99, RSS right after the requests and idle after them, and `lenslink related` as
   a process while the daemon serves the vault; in its last run, one note rewritten to
   another theme: seconds until `/v1/related` for it changes and until its block is on
   disk (the note is put back afterwards, and the store and snapshot with it);
4. with --llm: the same notes in an `llm` collection (`llm embed-multi` with the same
   cheap embedder through bench/llm_plugin.py), and `llm similar` as a whole process;
5. with --train: `lenslink train` (every lens) and the learned ranker's latency;
6. with --cold (before 2): the daemon's start without a ranking snapshot (it builds one
   in a child process).

Targets (issue): restart < 5 s at 100,000 notes; /v1/related p50 < 20 ms, p99 < 50 ms;
CLI >= 5x faster than `llm similar`; daemon idle RSS < 400 MB; indexing peak < 1 GB;
training < 2 min, ranking per note < 50 ms.

Usage:
  python bench/scale.py --llm --train                 # 100,000 notes in a temporary folder
  python bench/scale.py --notes 10000
  python bench/scale.py --vault V --db DB --llm-db L   # reuse what an earlier run kept
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cheap_embedder  # noqa: E402
import common  # noqa: E402
import synth  # noqa: E402
from daemon_latency import Daemon, single_edit, until_ready  # noqa: E402
from lenslink.daemon import RELEASE_AFTER  # noqa: E402

LENSLINK = [sys.executable, str(common.CHEAP)]
LLM = [sys.executable, str(common.BENCH / "llm_plugin.py")]


def lenslink(*args: str, vault: Path, db: Path) -> list[str]:
    # `related` needs no embedder (it ranks stored vectors) and, without --embedder, asks a
    # daemon serving the vault when there is one
    chosen = [] if args[0] == "related" else ["--embedder", cheap_embedder.NAME]
    return [*LENSLINK, args[0], str(vault), *args[1:], "--db", str(db), *chosen]


def measured(cmd: list[str], env: dict, what: str) -> dict:
    common.log(f"{what}: {common.show(cmd)}")
    r = common.run_measured(cmd, env)
    if r["returncode"] != 0:
        common.log(f"failed ({r['returncode']}): {r['stderr'][-800:]}")
    last = (r["stdout"].strip().splitlines() or [""])[-1]
    return {"seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"], "returncode": r["returncode"],
            "output": last[:200]}


def best_of(cmds: list[list[str]], env: dict, what: str) -> dict:
    runs = [measured(c, env, what) for c in cmds]
    secs = sorted(r["seconds"] for r in runs)
    return {"runs_s": [r["seconds"] for r in runs], "median_s": secs[len(secs) // 2],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "output": runs[-1]["output"]}


def run(args, work: Path) -> dict:
    vault = Path(args.vault) if args.vault else work / "vault"
    db = Path(args.db) if args.db else work / "index.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out: dict = {"notes": args.notes}
    if not (vault / "daily").is_dir():
        common.log(f"generating {args.notes} notes")
        with common.Timer() as t:
            synth.generate(vault, args.notes, args.seed)
        out["generate_s"] = round(t.seconds, 1)
    if not db.exists():
        out["first_index"] = measured(lenslink("index", vault=vault, db=db), env, "first index")
    out["restart_index (unchanged)"] = best_of(
        [lenslink("index", vault=vault, db=db) for _ in range(3)], env, "unchanged index")
    # the unsupervised ranking first: rankers a reused database kept from an earlier
    # --train are dropped (--train trains them again below)
    from lenslink import learn
    from lenslink.store import Store
    store = Store.open(db)
    store.delete_models()
    # as bench/daemon_latency.py: the daemon would start training (the vault has links and
    # no rankers yet), which --train measures on its own; here it serves the unsupervised
    # ranking
    store.set_meta("trained_features", ",".join(learn.FEATURES))
    store.set_meta("trained_links", str(store.db.execute("SELECT count(*) FROM links").fetchone()[0]))
    store.close()
    notes = sorted(str(p.relative_to(vault)) for p in (vault / "topics").glob("*.md"))
    picks = random.Random(args.seed).sample(notes, min(args.requests, len(notes)))
    if args.cold:
        # a daemon that finds no snapshot builds it in a child process and maps the file
        # (first: the snapshot is then built once, not again by the CLI below)
        from lenslink import snapshot
        snapshot.path_for(db).unlink(missing_ok=True)
        out["daemon_cold (builds the snapshot apart)"] = daemon(vault, db, env, picks, args, cli=False)
    first = "cli_related_first" + ("" if args.cold else " (builds the snapshot)")
    out[first] = measured(lenslink("related", picks[0], vault=vault, db=db), env, "first related")
    out["cli_related (snapshot loaded)"] = best_of(
        [lenslink("related", p, vault=vault, db=db) for p in picks[1:4]], env, "related")
    out["daemon"] = daemon(vault, db, env, picks, args, edit=not args.train)
    if args.llm:
        out["llm"] = llm_side(vault, Path(args.llm_db) if args.llm_db else work / "llm.db",
                              picks, env, work)
        cli = out["daemon"].get("cli_related_while_serving", {}).get("median_s")
        alone = out["cli_related (snapshot loaded)"]["median_s"]
        llm_s = out["llm"]["similar"]["median_s"]
        out["ratios"] = {"llm similar / lenslink related (daemon serving)": round(llm_s / cli, 1) if cli else None,
                         "llm similar / lenslink related (no daemon)": round(llm_s / alone, 1),
                         "target": ">= 5"}
    if args.train:
        out["train"] = measured([*lenslink("train", vault=vault, db=db)], env, "train")
        out["daemon_trained"] = daemon(vault, db, env, picks, args, cli=False, edit=True)
    return out


def daemon(vault: Path, db: Path, env: dict, picks: list[str], args, cli: bool = True,
           edit: bool = False) -> dict:
    token = subprocess.run([common.lenslink_bin(), "token"], capture_output=True, text=True,
                           check=True, env=env).stdout.strip()
    d = Daemon(vault, db, env)
    res: dict = {"command": common.show(d.cmd)}
    api = None
    edited = next(p for p in picks if p.startswith("topics/")) if edit else None
    original = (vault / edited).read_bytes() if edit else b""
    stat = (vault / edited).stat() if edit else None
    try:
        api, serving, ready = until_ready(d, token, args.timeout, 0.2)
        res["start_until_serving_s"] = round(serving, 2)
        if ready is None:
            res["error"] = "not ready in time"
            return res
        res["start_until_ready_s"] = round(ready, 2)
        res["idle_rss_mb (ready)"] = common.rss_mb(d.proc.pid)
        api.get(f"/v1/related?path={quote(picks[0])}")
        ms = [api.timed_get(f"/v1/related?path={quote(p)}")[0] for p in picks]
        res["/v1/related"] = common.percentiles(ms)
        res["rss_mb (right after the requests)"] = common.rss_mb(d.proc.pid)
        # idle: the daemon unmaps the snapshot pages the queries mapped (RELEASE_AFTER)
        time.sleep(RELEASE_AFTER + 1.5)
        res["idle_rss_mb (after the requests, idle)"] = common.rss_mb(d.proc.pid)
        if cli:
            res["cli_related_while_serving"] = best_of(
                [lenslink("related", p, vault=vault, db=db) for p in picks[1:4]], env,
                "related, daemon serving")
        if edit:
            got = single_edit(api, vault, [edited], random.Random(args.seed), Path(os.devnull), args)
            res["one edit"] = {k: v for k, v in got.items() if k != "texts embedded"}
    finally:
        if api is not None:
            api.close()
        d.stop()
        if edit:  # the note as it was, then the store and the snapshot (the next run's
            # start would otherwise bring the snapshot up to date)
            (vault / edited).write_bytes(original)
            os.utime(vault / edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            for what in ("index", "related"):
                measured(lenslink(what, *([edited] if what == "related" else []), vault=vault, db=db),
                         env, f"{what} after putting the edited note back")
    return res


def llm_side(vault: Path, llm_db: Path, picks: list[str], env: dict, work: Path) -> dict:
    env = {**env, "LLM_USER_PATH": str(work / "llm-home")}
    res: dict = {}
    if not llm_db.exists():
        res["embed_multi"] = measured([*LLM, "embed-multi", "notes", "--files", str(vault), "**/*.md",
                                       "-m", "bench-bow", "-d", str(llm_db)], env, "llm embed-multi")
    res["similar"] = best_of([[*LLM, "similar", "notes", p, "-d", str(llm_db), "-n", "10"]
                              for p in picks[1:4]], env, "llm similar")
    return res


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Usage:")[1])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--vault", help="an existing synthetic vault (else generated)")
    parser.add_argument("--db", help="its lenslink database (indexed first when missing)")
    parser.add_argument("--llm", action="store_true", help="compare with `llm similar`")
    parser.add_argument("--llm-db", help="an existing llm database of the same notes")
    parser.add_argument("--train", action="store_true", help="also train and time the learned ranker")
    parser.add_argument("--cold", action="store_true",
                        help="also start the daemon without a ranking snapshot (it builds one)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--tmp")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    with common.workdir(args.tmp, args.keep, "lenslink-scale-") as work, \
            common.data_dir(work / "data"):
        results = run(args, work)
    common.emit("scale", results, args.json)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
