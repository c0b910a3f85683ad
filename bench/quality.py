#!/usr/bin/env python3
"""Ranking quality of lenslink's default (`topic`) lens on the shared link-prediction tasks.

For every vault in ../shared/vaults/ this script
  1. builds the task with ../shared/eval/make_task.py (--drop-text; with --holdout, one
     task per seed),
  2. indexes OUT/vault with the `lenslink` CLI into a persistent database under the cache
     folder (vectors are cached by text hash, so a re-run embeds nothing; a new task's
     database starts as a copy of a sibling task's, so only changed texts are embedded),
  3. exports `lenslink related OUT/vault --all --json --top 100 --lens topic` and scores
     it with score.py's `evaluate`,
  4. runs baseline.py (random, TF-IDF, TF-IDF + title) on the same task,
  5. reads lenslink's stored chunk vectors and ranks with raw cosine (first chunk, exact
     truncation at 256 tokens, chunk mean, best chunk pair) and centred cosine, and
     recombines lenslink's own signals (centred cosine, lexical.TfIdf, lexical.Mentions,
     from rank.VaultIndex) into a small fusion ablation,
and prints markdown tables (recall@5, recall@10, MRR@10, nDCG@10) and the commands run.
Each task is measured in a fresh process and reports the sha256 of lenslink's source it
ran with, so a run during edits of src/lenslink says so instead of mixing versions.
Results of docs/quality.md come from this script.

"Truncation" embeds title + whole body once with the same embedder (which truncates at
256 tokens), exactly what a single-vector index would store; only notes with more than
one chunk need it, and those vectors are cached in CACHE/extra_vectors.db.

Usage (from the project root):
  python bench/quality.py                                  # --drop-text, both vaults
  python bench/quality.py --holdout 0.2 --seeds 0 1 2      # holdout, seeds averaged
Options: --vaults NAME ... --cache DIR (default /tmp/lenslink-quality) --no-truncation
         --json FILE (all numbers)
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EVAL = SHARED / "eval"
VAULTS = SHARED / "vaults"
sys.path.insert(0, str(EVAL))

import baseline  # noqa: E402  (../shared/eval)
import score  # noqa: E402

from lenslink import notes as notes_mod  # noqa: E402
from lenslink import rank  # noqa: E402
from lenslink.index import text_hash  # noqa: E402
from lenslink.lenses import load_config  # noqa: E402
from lenslink.lexical import TfIdf  # noqa: E402
from lenslink.store import Store  # noqa: E402

TOP = 100
LENS = "topic"
METRICS = ["recall@5", "recall@10", "mrr@10", "ndcg@10"]
COMMANDS: list[str] = []


def source_fingerprint() -> str:
    """sha256 of lenslink's installed source: the numbers belong to this version."""
    import hashlib
    import lenslink
    pkg = Path(lenslink.__file__).parent
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(f.relative_to(pkg).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def show(cmd: list) -> str:
    """The command as a user would type it from the project root."""
    def rel(a):
        a = str(a)
        if a == sys.executable:
            return "python3"
        if a == str(lenslink_bin()):
            return "lenslink"
        return "../" + a[len(str(ROOT.parent)) + 1:] if a.startswith(str(ROOT.parent) + "/") else a
    return " ".join(shlex.quote(rel(a)) for a in cmd)


def run(cmd: list, cwd: Path | None = None, record: bool = True) -> subprocess.CompletedProcess:
    if record:
        COMMANDS.append(show(cmd))
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {show(cmd)}\n{res.stderr[-2000:]}")
    return res


def lenslink_bin() -> Path:
    here = Path(sys.executable).with_name("lenslink")
    return here if here.exists() else Path(shutil.which("lenslink") or "lenslink")


# -- task, index, export ---------------------------------------------------------------
def make_task(vault: Path, out: Path, holdout: float, seed: int) -> None:
    cmd = [sys.executable, EVAL / "make_task.py", vault, out, "--drop-text"]
    if holdout:
        cmd += ["--holdout", holdout, "--seed", seed]
    log(run(cmd, cwd=EVAL).stdout.strip())


def seed_db(db: Path, vault_name: str, prefer: str) -> None:
    """Start a new task database as a copy of a sibling task's (same vault), so texts
    that did not change between tasks are not embedded again."""
    if db.exists():
        return
    siblings = [p for p in db.parent.glob(f"{vault_name}-*.db") if p != db]
    siblings.sort(key=lambda p: (not p.name.startswith(prefer), p.name))
    if not siblings:
        return
    src = sqlite3.connect(str(siblings[0]))
    dst = sqlite3.connect(str(db))
    with dst:
        src.backup(dst)
    src.close()
    with dst:  # a sibling's trained ranker learned another split's links: never reuse it
        if dst.execute("SELECT 1 FROM sqlite_master WHERE name='models'").fetchone():
            dst.execute("DELETE FROM models")
    dst.close()
    log(f"{db.name}: seeded from {siblings[0].name}")


def index(vault_dir: Path, db: Path) -> dict:
    t0 = time.time()
    res = run([lenslink_bin(), "index", vault_dir, "--db", db])
    summary = res.stdout.strip().splitlines()[-1]
    m = re.search(r"(\d+) texts embedded", summary)
    out = {"seconds": round(time.time() - t0, 1), "embedded": int(m.group(1)) if m else None,
           "summary": summary}
    log(f"index: {summary} ({out['seconds']} s)")
    return out


def export(vault_dir: Path, db: Path, out: Path) -> dict:
    res = run([lenslink_bin(), "related", vault_dir, "--all", "--json", "--top", TOP,
               "--lens", LENS, "--db", db])
    out.write_text(res.stdout, encoding="utf-8")
    COMMANDS[-1] += f" > {show([out])}"
    return json.loads(res.stdout)


# -- vectors ---------------------------------------------------------------------------
def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def centre(x: np.ndarray) -> np.ndarray:
    return unit(x - x.mean(axis=0))


class ExtraVectors:
    """Vectors lenslink does not store (whole-note texts, truncated by the embedder)."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(str(path))
        self.db.execute("CREATE TABLE IF NOT EXISTS v (embedder TEXT, hash TEXT, vec BLOB,"
                        " PRIMARY KEY (embedder, hash))")
        self._embedder = None

    def get(self, embedder_id: str, texts: list[str]) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        wanted = set(hashes)
        have = {h: np.frombuffer(v, dtype="<f4") for h, v in self.db.execute(
            "SELECT hash, vec FROM v WHERE embedder=?", [embedder_id]) if h in wanted}
        todo = sorted({h: t for h, t in zip(hashes, texts) if h not in have}.items())
        if todo:
            if self._embedder is None:
                from lenslink.embedders import get_embedder
                self._embedder = get_embedder("minilm")
                if self._embedder.id != embedder_id:
                    sys.exit(f"embedder {self._embedder.id} != stored {embedder_id}")
            t0 = time.time()
            vecs = self._embedder.embed_batch([t for _, t in todo])
            log(f"embedded {len(todo)} whole-note texts for truncation ({time.time() - t0:.0f} s)")
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO v VALUES (?,?,?)",
                                    [(embedder_id, h, v.astype("<f4").tobytes())
                                     for (h, _), v in zip(todo, vecs)])
            have.update({h: v for (h, _), v in zip(todo, vecs)})
        return np.stack([have[h] for h in hashes]).astype(np.float64)


def note_vectors(store: Store, embedder_id: str, paths: list[str], vault_dir: Path,
                 extra: ExtraVectors | None) -> dict:
    """Per note (in `paths` order): chunk-mean, first-chunk and truncated vectors."""
    cpaths, chunk_nos, ctexts, matrix = store.lens_vectors(embedder_id, LENS)
    pos = {p: i for i, p in enumerate(paths)}
    owner = np.array([pos[p] for p in cpaths])
    matrix = matrix.astype(np.float64)
    sums = np.zeros((len(paths), matrix.shape[1]))
    np.add.at(sums, owner, matrix)
    first = np.zeros_like(sums)
    first_rows = [i for i, c in enumerate(chunk_nos) if c == 0]
    first[owner[first_rows]] = matrix[first_rows]
    n_chunks = np.bincount(owner, minlength=len(paths))
    out = {"mean": unit(sums), "first": unit(first), "chunks": unit(matrix), "owner": owner,
           "n_chunks": n_chunks}
    if extra is not None:
        # A one-chunk note's chunk is its whole text (up to whitespace, which the
        # tokenizer ignores): reuse the stored vector; embed the others' whole texts.
        lens = load_config(vault_dir).lens(LENS)
        multi = [p for p in paths if n_chunks[pos[p]] > 1]
        whole = []
        for p in multi:
            note = notes_mod.read_note(vault_dir, p)
            whole.append(lens.template.format(prefix=lens.prefix, title=note.title,
                                              body=note.clean_text).strip())
        trunc = out["first"].copy()
        if multi:
            trunc[[pos[p] for p in multi]] = extra.get(embedder_id, whole)
        out["trunc"] = unit(trunc)
    return out


# -- ranking -----------------------------------------------------------------------------
def ranked(S: np.ndarray, rows: list[int], paths: list[str]) -> dict[str, list[str]]:
    """Top TOP per gold row; ties by path (columns are in path order), self excluded."""
    S = np.array(S, dtype=np.float64)
    S[np.arange(len(rows)), rows] = -np.inf
    top = np.argsort(-S, axis=1, kind="stable")[:, :TOP]
    return {paths[r]: [paths[j] for j in top[i]] for i, r in enumerate(rows)}


def zscore(S: np.ndarray, rows: list[int]) -> np.ndarray:
    """Standardise each query's scores over its candidates (self left out)."""
    mask = np.ones_like(S, dtype=bool)
    mask[np.arange(len(rows)), rows] = False
    mu = np.array([s[m].mean() for s, m in zip(S, mask)])[:, None]
    sd = np.array([s[m].std() for s, m in zip(S, mask)])[:, None].clip(1e-9)
    return (S - mu) / sd


def lexical_scores(vi, row: int) -> np.ndarray:
    """TF-IDF of a note to every note, as the installed rank.VaultIndex computes it."""
    if hasattr(vi, "lexical"):
        return vi.lexical(row)
    return vi.tfidf.similarities(row)


def fm_text(value) -> str:
    """Frontmatter values (not keys) as plain text."""
    if isinstance(value, dict):
        return " ".join(fm_text(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(fm_text(v) for v in value)
    return "" if value is None else str(value)


def analyse(task: Path, db: Path, gold: dict, extra: ExtraVectors | None) -> dict:
    """Scores of every vector-based method and fusion variant on one task."""
    vault_dir = task / "vault"
    store = Store.open(db)
    try:
        embedder_id = store.get_meta("embedder")
        vi = rank.VaultIndex.load(store, load_config(vault_dir), embedder_id)
        view = vi.views[LENS]
        paths = [vi.notes[int(r)].path for r in view.rows]
        vec = note_vectors(store, embedder_id, paths, vault_dir, extra)
        lex_texts = store.lex_texts()   # {path: text} or {path: (document text, query text)}
        doc_texts = [lex_texts.get(n.path, "") for n in vi.notes]
        doc_texts = [t[0] if isinstance(t, tuple) else t for t in doc_texts]
    finally:
        store.close()
    pos = {p: i for i, p in enumerate(paths)}
    rows = [pos[g] for g in gold]
    R = lambda X: X[rows] @ X.T  # noqa: E731
    dense = {"raw first": R(vec["first"]), "raw mean": R(vec["mean"]),
             "centred first": R(centre(vec["first"])), "centred mean": R(centre(vec["mean"]))}
    if "trunc" in vec:
        dense["raw trunc"] = R(vec["trunc"])
        dense["centred trunc"] = R(centre(vec["trunc"]))
    # best chunk pair: max over (chunk of query, chunk of candidate) raw cosines
    C, owner = vec["chunks"], vec["owner"]
    best = np.full((len(rows), len(paths)), -np.inf)
    for i, r in enumerate(rows):
        sims = C[owner == r] @ C.T                      # (query chunks, all chunks)
        m = sims.max(axis=0)
        np.maximum.at(best[i], owner, m)
    dense["raw best chunk pair"] = best
    # lenslink's own signals, exactly as rank.VaultIndex.raw_scores computes them
    centred32 = view.centred_rows(np.arange(len(view.rows)))
    lenslink_dense = np.stack([centred32 @ centred32[r] for r in rows])
    lex = np.stack([lexical_scores(vi, int(view.rows[r]))[view.rows] for r in rows])
    men = np.zeros_like(lex)
    for i, r in enumerate(rows):
        hit = vi.mentions.mentioned(vi.texts[int(view.rows[r])])
        men[i] = [int(x) in hit for x in view.rows]
    assert np.allclose(lenslink_dense, dense["centred mean"], atol=1e-4)
    Wd, Wl, Wt = rank.W_DENSE, rank.W_LEXICAL, rank.W_TITLE
    preds = {f"cosine: {k}": ranked(v, rows, paths) for k, v in dense.items()}
    fused = {
        "dense only (centred)": Wd * lenslink_dense,
        "lexical only": Wl * lex,
        "title only (ties by path)": Wt * men,
        "dense + title": Wd * lenslink_dense + Wt * men,
        "lexical + title": Wl * lex + Wt * men,
        "dense + lexical": Wd * lenslink_dense + Wl * lex,
        "dense + lexical + title (default)": Wd * lenslink_dense + Wl * lex + Wt * men,
        "default, raw dense (not centred)": Wd * dense["raw mean"] + Wl * lex + Wt * men,
        "default, dense = first chunk": Wd * dense["centred first"] + Wl * lex + Wt * men,
    }
    if "trunc" in vec:
        fused["default, dense = truncation"] = Wd * dense["centred trunc"] + Wl * lex + Wt * men
    fused["default, dense = best chunk pair"] = Wd * dense["raw best chunk pair"] + Wl * lex + Wt * men
    # z-scored per query: puts cosine and TF-IDF on one scale before adding them
    zd, zl = zscore(lenslink_dense, rows), zscore(lex, rows)
    fused["z(dense) + z(lexical)"] = zd + zl
    for t in (1, 2, 3):
        fused[f"z(dense) + z(lexical) + {t} x title"] = zd + zl + t * men
    # a fixed grid of fusion weights (same grid on every vault; nothing picked per vault)
    grid = {}
    for wd in (0.0, 0.25, 0.5, 0.75, 1.0):
        for wt in (0.0, 0.125, 0.25, 0.5):
            grid[f"{wd:g}/{1 - wd:g}/{wt:g}"] = wd * lenslink_dense + (1 - wd) * lex + wt * men
    # lenslink's lexical text is title + aliases + body: frontmatter (tags included) is
    # left out, while baseline.py reads the whole file. Same signals with it added:
    for label, extra_text in (("+ tags", lambda n: " ".join(n.tags)),
                              ("+ frontmatter values", lambda n: fm_text(n.frontmatter))):
        docs = [t + "\n" + extra_text(n) for t, n in zip(doc_texts, vi.notes)]
        queries = [t + "\n" + extra_text(n) for t, n in zip(vi.texts, vi.notes)]
        tf = TfIdf(docs)
        lex2 = np.stack([(tf.similarities_to(queries[int(view.rows[r])])
                          if hasattr(tf, "similarities_to") else tf.similarities(int(view.rows[r])))
                         [view.rows] for r in rows])
        men2 = np.zeros_like(lex2)
        for i, r in enumerate(rows):
            hit = vi.mentions.mentioned(queries[int(view.rows[r])])
            men2[i] = [int(x) in hit for x in view.rows]
        fused[f"lexical only, text {label}"] = Wl * lex2
        fused[f"lexical + title, text {label}"] = Wl * lex2 + Wt * men2
        fused[f"default, lexical text {label}"] = Wd * lenslink_dense + Wl * lex2 + Wt * men2
    preds.update({f"fusion: {k}": ranked(v, rows, paths) for k, v in fused.items()})
    preds.update({f"grid: {k}": ranked(v, rows, paths) for k, v in grid.items()})
    # signal scales: mean over queries of each signal's per-query spread
    spread = {name: {"mean": float(np.mean(S.mean(axis=1))), "sd": float(np.mean(S.std(axis=1)))}
              for name, S in (("centred cosine", lenslink_dense), ("raw cosine", dense["raw mean"]),
                              ("tf-idf", lex), ("title mentioned", men))}
    results = {k: score.evaluate(gold, p) for k, p in preds.items()}
    multi = vec["n_chunks"] > 1
    info = {"notes": len(paths), "chunks": int(len(owner)), "multi_chunk_notes": int(multi.sum()),
            "gold_multi_chunk": int(sum(multi[r] for r in rows)), "spread": spread,
            "title_hits_per_query": float(men.sum(axis=1).mean())}
    return {"results": results, "info": info, "preds": preds,
            "default_reimpl": preds["fusion: dense + lexical + title (default)"]}


# -- one task ------------------------------------------------------------------------------
def one_task(vault: Path, cache: Path, holdout: float, seed: int, extra) -> dict:
    name = f"{vault.name}-drop" if not holdout else f"{vault.name}-h{holdout:g}-s{seed}"
    task = cache / "tasks" / name
    db = cache / "db" / f"{name}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    log(f"== {name}")
    source_before = source_fingerprint()
    make_task(vault, task, holdout, seed)
    gold = json.loads((task / "gold.json").read_text(encoding="utf-8"))
    seed_db(db, vault.name, prefer=f"{vault.name}-h" if holdout else f"{vault.name}-drop")
    idx = index(task / "vault", db)
    pred = export(task / "vault", db, task / "pred_lenslink.json")
    results = {"lenslink default (fused, CLI)": score.evaluate(gold, pred)}
    COMMANDS.append(show([sys.executable, EVAL / "score.py", task / "gold.json",
                          task / "pred_lenslink.json"]))
    t0 = time.time()
    base = baseline.run(task)
    COMMANDS.append(show([sys.executable, EVAL / "baseline.py", task]))
    results.update({f"baseline: {k}": v for k, v in base.items()})
    log(f"baselines ({time.time() - t0:.0f} s)")
    t0 = time.time()
    a = analyse(task, db, gold, extra)
    same = sum(pred.get(g) == a["default_reimpl"][g] for g in gold)
    a["info"]["reimpl_identical_lists"] = f"{same}/{len(gold)}"
    results.update(a["results"])
    log(f"vector analysis ({time.time() - t0:.0f} s); default re-implementation gives the "
        f"CLI's top-{TOP} list for {same}/{len(gold)} gold notes")
    source = sorted({source_before, source_fingerprint()})
    if len(source) > 1:
        log(f"WARNING: lenslink's source changed while measuring {name}")
    return {"task": name, "gold_notes": len(gold), "index": idx, "info": a["info"],
            "results": results, "source": source, "commands": COMMANDS,
            "weights": [rank.W_DENSE, rank.W_LEXICAL, rank.W_TITLE]}


def task_in_child(vault: Path, a, seed: int) -> dict:
    """Measure one task in a fresh process, so that it sees one version of lenslink's
    source even if the source is edited during a long run."""
    out = a.cache / "results" / f"{vault.name}-{a.holdout:g}-{seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--one-task", vault.name, "--seed", str(seed),
           "--holdout", str(a.holdout), "--cache", str(a.cache), "--json", str(out)]
    if a.no_truncation:
        cmd.append("--no-truncation")
    if subprocess.run(cmd).returncode != 0:
        sys.exit(f"measuring {vault.name} (seed {seed}) failed")
    return json.loads(out.read_text(encoding="utf-8"))


def average(runs: list[dict]) -> dict:
    keys = runs[0]["results"]
    return {k: {m: float(np.mean([r["results"][k][m] for r in runs])) for m in METRICS + ["notes"]}
            for k in keys}


# -- report --------------------------------------------------------------------------------
MAIN = [("TF-IDF (baseline.py)", "baseline: tfidf"),
        ("TF-IDF + title (baseline.py)", "baseline: tfidf+title"),
        ("raw cosine, first chunk", "cosine: raw first"),
        ("raw cosine, truncated at 256 tokens", "cosine: raw trunc"),
        ("raw cosine, chunk mean", "cosine: raw mean"),
        ("centred cosine, chunk mean", "cosine: centred mean"),
        ("**lenslink default (fused)**", "lenslink default (fused, CLI)")]
CHUNKING = [("raw cosine, first chunk", "cosine: raw first"),
            ("raw cosine, truncated at 256 tokens", "cosine: raw trunc"),
            ("raw cosine, chunk mean (lenslink)", "cosine: raw mean"),
            ("raw cosine, best chunk pair", "cosine: raw best chunk pair"),
            ("centred cosine, first chunk", "cosine: centred first"),
            ("centred cosine, truncated", "cosine: centred trunc"),
            ("centred cosine, chunk mean (lenslink)", "cosine: centred mean"),
            ("fused default, dense = first chunk", "fusion: default, dense = first chunk"),
            ("fused default, dense = truncated", "fusion: default, dense = truncation"),
            ("fused default, dense = chunk mean (lenslink)", "fusion: dense + lexical + title (default)"),
            ("fused default, dense = best chunk pair (raw)", "fusion: default, dense = best chunk pair")]


def table(rows, per_vault: dict[str, dict]) -> str:
    vaults = list(per_vault)
    head = "| method | " + " | ".join(f"{v} R@5 | R@10 | MRR@10 | nDCG@10" for v in vaults) + " |"
    lines = [head, "|---|" + "---:|" * (4 * len(vaults))]
    for label, key in rows:
        if not all(key in per_vault[v] for v in vaults):
            continue
        cells = [f"{per_vault[v][key][m]:.3f}" for v in vaults for m in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid_table(per_vault: dict[str, dict]) -> str:
    vaults = list(per_vault)
    wts = ("0", "0.125", "0.25", "0.5")
    lines = ["| W_DENSE / W_LEXICAL | " + " | ".join(f"title {t}" for t in wts) + " |",
             "|---|" + "---:|" * len(wts)]
    for wd in ("0", "0.25", "0.5", "0.75", "1"):
        wl = f"{1 - float(wd):g}"
        cells = [" / ".join(f"{per_vault[v][f'grid: {wd}/{wl}/{t}']['recall@10']:.3f}" for v in vaults)
                 for t in wts]
        lines.append(f"| {wd} / {wl} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--holdout", type=float, default=0.0, metavar="F")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--vaults", nargs="+", help="vault folder names (default: all)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/lenslink-quality"))
    ap.add_argument("--no-truncation", action="store_true",
                    help="skip the whole-note (truncated) vectors, which need the model")
    ap.add_argument("--json", type=Path, help="write every number to this file")
    ap.add_argument("--one-task", metavar="VAULT", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one_task:
        extra = None if a.no_truncation else ExtraVectors(a.cache / "extra_vectors.db")
        res = one_task(VAULTS / a.one_task, a.cache, a.holdout, a.seed, extra)
        a.json.write_text(json.dumps(res), encoding="utf-8")
        return
    vaults = sorted(p for p in VAULTS.iterdir() if p.is_dir()
                    and (not a.vaults or p.name in a.vaults))
    if not vaults:
        sys.exit(f"no vaults under {VAULTS}")
    a.cache.mkdir(parents=True, exist_ok=True)
    seeds = a.seeds if a.holdout else [0]
    runs: dict[str, list[dict]] = {}
    for vault in vaults:
        runs[vault.name] = [task_in_child(vault, a, s) for s in seeds]
    COMMANDS[:] = [c for rs in runs.values() for r in rs for c in r["commands"]]
    sources = sorted({f for rs in runs.values() for r in rs for f in r["source"]})
    per_vault = {v: average(rs) for v, rs in runs.items()}
    mode = ("--drop-text" if not a.holdout else
            f"--holdout {a.holdout:g} --drop-text, seeds {' '.join(map(str, a.seeds))} averaged")
    print(f"## Link prediction, {mode}\n")
    print(f"lenslink source fingerprint {', '.join(sources)} (sha256 of src/lenslink/**/*.py)"
          + ("" if len(sources) == 1 else "; WARNING: the source changed during the run, "
             "tasks were measured with different versions") + "\n")
    for v, rs in runs.items():
        i = rs[0]["info"]
        print(f"- {v}: {i['notes']} notes, {i['chunks']} chunks ({i['multi_chunk_notes']} notes "
              f"with >1 chunk), {rs[0]['gold_notes']} gold notes per task "
              f"({i['gold_multi_chunk']} multi-chunk); index: "
              + "; ".join(f"{r['task']} {r['index']['embedded']} texts embedded in "
                          f"{r['index']['seconds']} s" for r in rs)
              + "; default re-implemented = CLI top-100 lists: "
              + ", ".join(r["info"]["reimpl_identical_lists"] for r in rs))
    print("\n### Main table\n")
    print(table(MAIN, per_vault))
    print("\n### Chunking: what a note's vector is\n")
    print(table(CHUNKING, per_vault))
    print("\n### Fusion ablation (lenslink signals; weights W_DENSE=%g W_LEXICAL=%g W_TITLE=%g)\n"
          % tuple(next(iter(runs.values()))[0]["weights"]))
    keys = [k for k in next(iter(per_vault.values())) if k.startswith("fusion: ")]
    print(table([(k[len("fusion: "):], k) for k in keys], per_vault))
    print("\n### Weight grid, recall@10 (" + " / ".join(per_vault) + "); title = title-mention bonus\n")
    print(grid_table(per_vault))
    print("\n### Signal scales (per query: mean and standard deviation over candidates, averaged)\n")
    for v, rs in runs.items():
        sp = rs[0]["info"]["spread"]
        print(f"- {v}: " + "; ".join(f"{k} mean {s['mean']:.3f} sd {s['sd']:.3f}" for k, s in sp.items())
              + f"; title hits per query {rs[0]['info']['title_hits_per_query']:.1f}")
    print("\n### Commands run\n\n```sh")
    print("\n".join(dict.fromkeys(COMMANDS)))
    print("```")
    if a.json:
        a.json.write_text(json.dumps({"mode": mode, "source": sources, "runs": runs, "average": per_vault},
                                     indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
