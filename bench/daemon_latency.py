#!/usr/bin/env python3
"""Daemon latency: `lenslink serve` on a synthetic vault, edits, a burst, the API.

The daemon runs as a real process (`python bench/cheap_embedder.py serve ...`, the CLI
with the cheap embedder registered) with `--write auto --quiet 0 --debounce 0.1`, on a
synthetic vault (bench/synth.py) indexed beforehand with the same embedder. Its
LENSLINK_DATA_DIR is temporary; the token comes from `lenslink token` with the same
LENSLINK_DATA_DIR. The cheap embedder logs every text it embeds (BENCH_EMBED_LOG).

Measured (printed; no timed assertions):
  1. start-up: process start until it serves, and until its first sync is done;
  2. API latency p50/p99: GET /v1/related for random notes over the whole vault, and
     a few GET /v1/block and GET /v1/status;
  3. one edited note: time until /v1/related for it changes, and until its block is on
     disk (auto write-back), and what was embedded;
  4. a burst of --burst changed notes: time until every note's block is on disk and the
     daemon is idle (ready, empty queue, no pending write), and whether each new text was
     embedded exactly once.

The stored rankers are marked as up to date before the start (meta `trained_links`), so
the daemon does not train at start-up; --startup-training leaves that to the daemon.

Usage:
  python bench/daemon_latency.py                          # 10,000 notes, burst of 1,000
  python bench/daemon_latency.py --notes 1000 --burst 200 # quicker
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cheap_embedder  # noqa: E402
import common  # noqa: E402
import synth  # noqa: E402

from lenslink import boilerplate  # noqa: E402
from lenslink import index as index_mod  # noqa: E402
from lenslink import notes as notes_mod  # noqa: E402
from lenslink.vault import Vault  # noqa: E402

SERVING = re.compile(r"lenslink serving .* on http://([\d.]+):(\d+)/v1")
MARKER = "%% lenslink:start %%"


class Api:
    """One keep-alive HTTP/1.1 connection to the daemon."""

    def __init__(self, host: str, port: int, token: str):
        self.host, self.port, self.token = host, port, token
        self.conn = http.client.HTTPConnection(host, port, timeout=600)

    def get(self, path: str) -> tuple[int, dict]:
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
                resp = self.conn.getresponse()
                return resp.status, json.loads(resp.read() or b"{}")
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def timed_get(self, path: str) -> tuple[float, int, dict]:
        start = time.perf_counter()
        status, body = self.get(path)
        return (time.perf_counter() - start) * 1000, status, body

    def close(self) -> None:
        self.conn.close()


class Daemon:
    """`lenslink serve` (with the cheap embedder) in a subprocess, stderr collected."""

    def __init__(self, vault: Path, db: Path, env: dict):
        self.cmd = [sys.executable, str(common.CHEAP), "serve", str(vault), "--db", str(db),
                    "--embedder", cheap_embedder.NAME, "--port", "0", "--write", "auto",
                    "--quiet", "0", "--debounce", "0.1"]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_serving(self, timeout: float) -> tuple[str, int]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: {''.join(self.lines)}")
            for line in list(self.lines):
                m = SERVING.search(line)
                if m:
                    return m.group(1), int(m.group(2))
            time.sleep(0.02)
        raise RuntimeError(f"serve did not start within {timeout} s")

    def stop(self) -> float:
        """SIGTERM, then the seconds until it exited (killed after 120 s)."""
        if self.proc.poll() is not None:
            return 0.0
        start = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self.reader.join(5)
        return time.perf_counter() - start


def until_ready(daemon: "Daemon", token: str, timeout: float, interval: float) -> tuple[Api, float, float | None]:
    """(an Api on it, seconds until serving, seconds until its first sync was done or
    None when it was not done within `timeout`)."""
    host, port = daemon.wait_serving(timeout)
    serving = time.perf_counter() - daemon.started
    api = Api(host, port, token)
    ready = wait_until(lambda: idle(status(api)), timeout, interval)
    return api, serving, (time.perf_counter() - daemon.started) if ready else None


def status(api: Api) -> dict:
    code, body = api.get("/v1/status")
    return body if code == 200 else {}


def idle(body: dict) -> bool:
    return body.get("phase") == "ready" and body.get("queue") == 0 and body.get("pending_writes") == 0


def wait_until(predicate, timeout: float, interval: float):
    """Poll until `predicate()` is truthy; its value, or None after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            return None
        time.sleep(interval)


def log_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def expected_hashes(vault_dir: Path, paths: list[str], vault: Vault) -> set[str]:
    """Hashes of every lens text of these notes as they are now (what must be embedded),
    boilerplate lines left out as the index does."""
    out = set()
    common = index_mod._boilerplate(vault.store)
    for rel in paths:
        note = notes_mod.read_note(vault_dir, rel)
        note = dataclasses.replace(note, clean_text=boilerplate.strip(
            note.clean_text, common.get(note.folder, frozenset())))
        meta = index_mod.note_meta(note)
        out |= {index_mod.text_hash(t) for lens in vault.config.lenses if lens.applies(meta)
                for t in lens.texts(note)}
    return out


def rewrite_theme(path: Path, writer: synth.Writer, theme: str, marker: str) -> None:
    """Replace the note's text after its title with paragraphs of another theme."""
    text = path.read_text(encoding="utf-8")
    head = text.split("\n# ", 1)
    title = head[1].split("\n", 1)[0] if len(head) == 2 else path.stem
    note = synth.Note("topics", title, theme, theme)
    body = "\n\n".join(writer.paragraph(note, 80, []) for _ in range(3))
    path.write_text(f"{head[0]}\n# {title}\n\n{body} {marker}\n", encoding="utf-8")


def run(args) -> dict:
    cheap_embedder.register()
    results: dict = {"notes": args.notes, "burst_notes": args.burst}
    rng = random.Random(args.seed)
    with common.workdir(args.tmp, args.keep, "lenslink-daemon-") as work, \
            common.data_dir(work / "data") as data:
        vault_dir, db, embed_log = work / "vault", work / "index.db", work / "embedded.log"
        common.log(f"generating {args.notes} notes and indexing them (cheap embedder)")
        synth.generate(vault_dir, args.notes, args.seed)
        with Vault(vault_dir, db=db, embedder=cheap_embedder.NAME) as v:
            with common.Timer() as t:
                v.index()
            results["setup_index_s"] = round(t.seconds, 1)
            if not args.startup_training:
                from lenslink import learn
                v.store.set_meta("trained_features", ",".join(learn.FEATURES))
                v.store.set_meta("trained_links", str(v.store.db.execute(
                    "SELECT count(*) FROM links").fetchone()[0]))
            sources = v.ranking().lens_notes(v.config.names[0])
        token = subprocess.run([common.lenslink_bin(), "token"], capture_output=True, text=True,
                               check=True, env=os.environ.copy()).stdout.strip()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "BENCH_EMBED_LOG": str(embed_log),
               "LENSLINK_DATA_DIR": str(data)}
        daemon = Daemon(vault_dir, db, env)
        results["command"] = common.show(daemon.cmd)
        api = None
        try:
            api, serving, ready = until_ready(daemon, token, args.timeout, 0.5)
            results["startup_serving_s"] = round(serving, 2)
            if ready is None:
                results["error"] = "the daemon did not become ready"
                return results
            results["startup_ready_s (first sync done)"] = round(ready, 2)
            results["embedded_at_startup"] = len(log_lines(embed_log))
            results["api"] = api_latency(api, sources, rng, args)
            results["single_edit"] = single_edit(api, vault_dir, sources, rng, embed_log, args)
            if args.burst:
                results["burst"] = burst(api, vault_dir, db, sources, rng, embed_log, args)
        finally:
            if api is not None:
                api.close()
            results["shutdown_s"] = round(daemon.stop(), 2)
            errors = [line.strip() for line in daemon.lines if "ERROR" in line or "Traceback" in line]
            if errors:
                results["daemon_errors"] = errors[:5]
    return results


def api_latency(api: Api, sources: list[str], rng: random.Random, args) -> dict:
    paths = rng.sample(sources, min(args.requests, len(sources)))
    api.get(f"/v1/related?path={quote(paths[0])}")  # warm-up
    common.log(f"{len(paths)} GET /v1/related")
    ms, codes = [], collections.Counter()
    for p in paths:
        elapsed, code, _ = api.timed_get(f"/v1/related?path={quote(p)}")
        ms.append(elapsed)
        codes[code] += 1
    out = {"/v1/related": {**common.percentiles(ms), "status_codes": dict(codes)}}
    ms = [api.timed_get(f"/v1/block?path={quote(p)}")[0] for p in paths[:args.requests // 4 or 1]]
    out["/v1/block"] = common.percentiles(ms)
    ms = [api.timed_get("/v1/status")[0] for _ in range(5)]
    out["/v1/status"] = common.percentiles(ms)
    return out


def single_edit(api: Api, vault_dir: Path, sources: list[str], rng: random.Random,
                embed_log: Path, args) -> dict:
    target = next(p for p in rng.sample(sources, len(sources)) if p.startswith("topics/"))
    _, before = api.get(f"/v1/related?path={quote(target)}")
    before_paths = [r["path"] for r in before.get("related", [])]
    logged = len(log_lines(embed_log))
    text = (vault_dir / target).read_text(encoding="utf-8").lower()
    themes = sorted(synth.THEMES)  # a theme far from the note's own: its related notes change
    theme = next((t for t in themes if not any(w in text for w in synth.THEMES[t].split()[:5])),
                 themes[0])
    common.log(f"editing {target} (to theme {theme})")
    writer = synth.Writer(random.Random(args.seed + 1))
    start = time.perf_counter()
    rewrite_theme(vault_dir / target, writer, theme, "benchmarkedit")
    marks: dict[str, float] = {}

    def check():
        now = time.perf_counter() - start
        if "related" not in marks:
            code, body = api.get(f"/v1/related?path={quote(target)}")
            if code == 200 and [r["path"] for r in body.get("related", [])] != before_paths:
                marks["related"] = now
        if "block" not in marks and MARKER in (vault_dir / target).read_text(encoding="utf-8"):
            marks["block"] = now
        return len(marks) == 2

    wait_until(check, args.timeout, 0.02)
    return {"note": target, "new theme": theme,
            "until /v1/related changed_s": round(marks["related"], 3) if "related" in marks else "timeout",
            "until block on disk_s": round(marks["block"], 3) if "block" in marks else "timeout",
            "texts embedded": len(log_lines(embed_log)) - logged}


def burst(api: Api, vault_dir: Path, db: Path, sources: list[str], rng: random.Random,
          embed_log: Path, args) -> dict:
    wait_until(lambda: idle(status(api)), args.timeout, 0.2)
    with Vault(vault_dir, db=db, embedder=cheap_embedder.NAME) as v:
        all_notes = [r.path for r in v.store.notes()]
        stored = {r[0] for r in v.store.db.execute("SELECT text_hash FROM vectors")}
        chosen = rng.sample(all_notes, min(args.burst, len(all_notes)))
        logged = len(log_lines(embed_log))
        common.log(f"burst: changing {len(chosen)} notes")
        start = time.perf_counter()
        for i, rel in enumerate(chosen):
            with open(vault_dir / rel, "a", encoding="utf-8") as f:
                f.write(f"\nBurst edit {i} of the benchmark: wordburst{i}.\n")
        written_s = time.perf_counter() - start
        expected = expected_hashes(vault_dir, chosen, v) - stored
    marks: dict[str, float] = {}
    progress: list[tuple[float, int]] = []
    last = {"lines": 0, "at": 0.0}

    def check():
        now = time.perf_counter() - start
        lines = len(log_lines(embed_log)) - logged
        if lines != last["lines"]:
            last.update(lines=lines, at=now)
        with_block = sum(MARKER in (vault_dir / rel).read_text(encoding="utf-8") for rel in chosen)
        if not progress or progress[-1][1] != with_block:
            progress.append((round(now, 1), with_block))
        if with_block == len(chosen) and "blocks" not in marks:
            marks["blocks"] = now
        if "blocks" in marks and idle(status(api)):
            marks["idle"] = now
            return True
        return False

    wait_until(check, args.timeout, 0.5)
    lines = log_lines(embed_log)[logged:]
    counts = collections.Counter(lines)
    return {
        "notes changed": len(chosen), "changing them took_s": round(written_s, 3),
        "until every block on disk_s": round(marks["blocks"], 2) if "blocks" in marks else
        f"timeout after {args.timeout} s",
        "until idle (ready, empty queue, no pending write)_s": round(marks["idle"], 2) if "idle" in marks
        else "timeout",
        "last text embedded at_s": round(last["at"], 2),
        "blocks on disk over time (s, notes)": progress[:3] + (["..."] if len(progress) > 6 else []) + progress[-3:]
        if len(progress) > 6 else progress,
        "texts embedded": len(lines), "distinct texts": len(counts),
        "texts embedded more than once": sum(1 for c in counts.values() if c > 1),
        "new texts expected": len(expected),
        "expected but not embedded": len(expected - set(counts)),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Usage:")[1])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=1000, help="notes changed at once (0: skip)")
    parser.add_argument("--requests", type=int, default=200, help="GET /v1/related requests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800, help="give up waiting after S seconds")
    parser.add_argument("--startup-training", action="store_true",
                        help="let the daemon train its rankers at start-up")
    parser.add_argument("--tmp", help="folder for the temporary vault and database")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    results = run(args)
    common.emit("daemon_latency", results, args.json)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
