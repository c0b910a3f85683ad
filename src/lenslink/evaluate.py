"""`lenslink eval`: hold out some notes' links, learn from the rest, score the rankings.

The protocol and the metrics are those of `shared/eval` (`make_task.py --holdout`,
`score.py`), so the numbers can be checked against them on the same split.
"""
from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np

from .block import remove_block
from .links import Resolver, wikilinks
from .lenses import CONFIG_NAME

K = 10
METRICS = ("recall@5", "recall@10", "mrr@10", "ndcg@10")


# -- the task (same protocol as make_task.py) -----------------------------------------
def read_vault(root: Path) -> dict[str, str]:
    """{path: text} of every note, hidden paths skipped, in the reference's order.

    lenslink's own "Related notes" block is left out: its links are suggestions, not the
    author's (make_task.py knows no such block; on a vault without one they agree)."""
    notes = {}
    for p in sorted(Path(root).rglob("*.md")):
        rel = p.relative_to(root).as_posix()
        if not any(part.startswith(".") for part in rel.split("/")) and p.is_file():
            notes[rel] = remove_block(p.read_text(encoding="utf-8", errors="replace"))
    return notes


def link_graph(notes: dict[str, str]) -> dict[str, list[str]]:
    """Resolved, deduplicated wikilink targets per note (embeds and self-links left out)."""
    resolver = Resolver(notes)
    graph = {}
    for src, text in notes.items():
        out = []
        for link in wikilinks(text):
            if link.embed:
                continue
            dst = resolver.resolve(link.path, src)
            if dst is not None and dst != src and dst not in out:
                out.append(dst)
        graph[src] = out
    return graph


def held_out(graph: dict[str, list[str]], fraction: float, seed: int, min_links: int = 2) -> set[str]:
    eligible = [src for src, dst in graph.items() if len(dst) >= min_links]
    return set(random.Random(seed).sample(eligible, round(fraction * len(eligible))))


def strip_links(text: str, drop_text: bool, keep) -> str:
    """Links replaced by their visible text (or nothing), except those `keep` accepts."""
    parts, pos = [], 0
    for link in wikilinks(text):
        if not link.embed and keep(link.path):
            continue
        parts += [text[pos:link.start], "" if link.embed or drop_text else link.visible]
        pos = link.end
    return "".join(parts) + text[pos:]


def make_task(vault: Path, out: Path, fraction: float, seed: int, drop_text: bool = True,
              min_links: int = 2) -> dict[str, list[str]]:
    """Write OUT/vault (held-out notes' links and links to them stripped) and return gold."""
    notes = read_vault(vault)
    graph = link_graph(notes)
    held = held_out(graph, fraction, seed, min_links) if fraction else set()
    resolver = Resolver(notes)
    if (out / "vault").exists():
        shutil.rmtree(out / "vault")
    for rel, text in notes.items():
        if fraction and rel not in held:
            keep = lambda path, rel=rel: resolver.resolve(path, rel) not in held
        else:
            keep = lambda path: False
        dest = out / "vault" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(strip_links(text, drop_text, keep), encoding="utf-8")
    config = Path(vault) / CONFIG_NAME
    if config.exists():
        shutil.copy(config, out / "vault" / CONFIG_NAME)
    eligible = [src for src, dst in graph.items() if len(dst) >= min_links]
    gold = {src: sorted(graph[src]) for src in eligible if not fraction or src in held}
    (out / "gold.json").write_text(json.dumps(gold, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return gold


# -- scoring (same definitions as score.py) -------------------------------------------
def score_note(gold: set[str], ranked: list[str], note: str) -> dict[str, float]:
    seen = {note}
    ranked = [p for p in ranked if not (p in seen or seen.add(p))]
    hits = [p in gold for p in ranked[:K]]
    first = next((i for i, h in enumerate(hits) if h), None)
    dcg = sum(1 / math.log2(i + 2) for i, h in enumerate(hits) if h)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(gold), K)))
    return {"recall@5": sum(hits[:5]) / len(gold), "recall@10": sum(hits) / len(gold),
            "mrr@10": 0.0 if first is None else 1 / (first + 1), "ndcg@10": dcg / idcg}


def evaluate(gold: dict[str, list[str]], preds: dict[str, list[str]]) -> dict[str, float]:
    rows = [score_note(set(g), preds.get(n, []), n) for n, g in gold.items()]
    res = {k: sum(r[k] for r in rows) / max(len(rows), 1) for k in METRICS}
    res["notes"] = len(rows)
    return res


# -- the methods ----------------------------------------------------------------------
def rankings(ranking, lens: str, notes: list[str], top: int = 100) -> dict[str, dict[str, list[str]]]:
    """Predictions per method for `notes`: the lens's ranker (learned when trained, else
    the unsupervised fusion) and the baselines raw cosine, centred cosine, lexical."""
    view = ranking.views[lens]
    paths = [ranking.notes[int(r)].path for r in view.rows]
    out = {"lenslink": {}, "fusion": {}, "raw cosine": {}, "centred cosine": {}, "lexical": {}}
    model, view.model = view.model, None
    try:
        for note in notes:
            i = view.position.get(ranking.row.get(note, -1))
            if i is None:
                continue
            allowed = view.candidates.copy()
            allowed[i] = False
            fused, cosine, lexical, _ = ranking.raw_scores(view, i)
            for name, s in (("fusion", fused), ("raw cosine", view.raw @ view.raw[i]),
                            ("centred cosine", cosine), ("lexical", lexical)):
                out[name][note] = _top(np.where(allowed, s, -np.inf), paths, top)
    finally:
        view.model = model
    for note in notes:
        if note in ranking.row:
            out["lenslink"][note] = [r.path for r in ranking.related(note, lens, top, min_score=0.0)]
    return out


def _top(scores: np.ndarray, paths: list[str], top: int) -> list[str]:
    order = sorted(np.flatnonzero(np.isfinite(scores)), key=lambda j: (-scores[j], paths[j]))
    return [paths[j] for j in order[:top]]


def write_predictions(out: Path, preds: dict[str, dict[str, list[str]]]) -> None:
    for name, p in preds.items():
        path = out / f"pred_{name.replace(' ', '_')}.json"
        path.write_text(json.dumps(p, ensure_ascii=False), encoding="utf-8")


def fmt_table(results: dict[str, dict[str, float]]) -> str:
    lines = [f"{'method':16s} " + " ".join(f"{m:>9s}" for m in METRICS)]
    for name, r in results.items():
        lines.append(f"{name:16s} " + " ".join(f"{r[m]:9.3f}" for m in METRICS))
    return "\n".join(lines)



def _first_lens(root: Path) -> str:
    from .lenses import load_config
    return load_config(root).lenses[0].name


def _nothing_to_evaluate(root: Path, holdout: float) -> None:
    """Say why no note was held out (an error a user can act on)."""
    from .errors import ConfigError, NotFound

    notes = read_vault(root)
    if not notes:
        raise NotFound(f"{root} has no Markdown notes to evaluate")
    linked = sum(len(dst) >= 2 for dst in link_graph(notes).values())
    if not linked:
        raise NotFound(f"no note in {root} links to 2 or more other notes, so there are no "
                       "links to hold out and evaluate")
    raise ConfigError(f"--holdout {holdout} holds out none of the notes that link to 2 or "
                      f"more notes ({linked}); raise --holdout")


def run_eval(vault, lens: str | None = None, holdout: float = 0.2, seed: int = 0,
             drop_text: bool = True, out=None, db=None, embedder=None, progress=None) -> dict:
    """Build the task, index it (vectors cached across runs), train, rank, score."""
    import tempfile

    from . import config as paths
    from .vault import Vault

    root = paths.vault_root(vault)
    work = Path(out) if out else Path(tempfile.mkdtemp(prefix="lenslink-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        gold = make_task(root, work, holdout, seed, drop_text)
        if not gold:
            _nothing_to_evaluate(root, holdout)
        cache = db or paths.data_dir() / "eval" / (paths.default_db_path(root).stem + ".db")
        with Vault(work / "vault", db=cache, embedder=embedder, only_lens=lens or _first_lens(work / "vault")) as v:
            v.index(progress=progress)
            if progress is not None and hasattr(progress, "close"):
                progress.close()
            name = v.config.lens(lens).name
            v.store.delete_models()
            report = v.train(name, seed) if holdout else {name: {"trained": False}}
            preds = rankings(v.ranking(), name, list(gold))
        if out:
            write_predictions(work, preds)
        return {"lens": name, "notes": len(gold), "holdout": holdout, "seed": seed,
                "training": report.get(name, {}),
                "methods": {m: evaluate(gold, p) for m, p in preds.items()}}
    finally:
        if not out:
            shutil.rmtree(work, ignore_errors=True)
