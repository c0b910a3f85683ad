"""The `lenslink` command line: thin click commands over `lenslink.vault.Vault`."""
from __future__ import annotations

import functools
import json
import math
import os
import sys
import textwrap
from pathlib import Path

import click

from . import client
from . import index as index_mod
from .errors import ConfigError, LenslinkError
from .lenses import default_config
from .vault import PRECISION_ENV, Vault

TRAIN_HINT_LINKS = 20  # `index` suggests `train` from this many links (the daemon trains from 20)
STAGES = {"read": "Reading notes", "rewrite": "Rewriting texts", "embed": "Embedding texts",
          "label": "Labelling pairs"}


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def handle_errors(func):
    """Turn lenslink errors into one readable line and exit code 1, never a traceback."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LenslinkError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted; the next run completes the index", err=True)
            sys.exit(130)
    return wrapper


def _set_precision(ctx, param, value):
    # An environment variable, so that every Vault of this process (the daemon's trainer
    # opens its own) embeds the same way.
    if value:
        os.environ[PRECISION_ENV] = value
    return value


def chosen_embedder(v: Vault, embedder: str | None) -> bool:
    """Whether --embedder or --precision was given; then checked as `index` checks them,
    and against the embedder the vault was indexed with (a ranking uses its vectors).
    Every command that ranks calls it first, so it also gives the stale-index warning."""
    chosen = bool(embedder or os.environ.get(PRECISION_ENV))
    if chosen:
        v.check_embedder()
    warn_if_config_changed(v)
    return chosen


def warn_if_config_changed(v: Vault) -> None:
    """Say so when .lenslink.toml changed its lenses since the last index (a new lens
    has no texts yet: it would look empty)."""
    if index_mod.config_outdated(v.store, v.config):
        fix = ("the lenslink daemon serving this vault is bringing it up to date"
               if client.find(v.db_path) is not None else f"run `lenslink index {v.root}`")
        click.echo("warning: the index was built with other lenses or exclude globs than "
                   f".lenslink.toml's now (or by another lenslink version); {fix}", err=True)


def catch_up(v: Vault, notes: list[str] | None) -> None:
    """Read the notes a command is about (every note: None) where they changed since the
    last index, unless a daemon serves the vault (it reads them as they change). A sync
    that fails is a warning: the command goes on with the index as it is."""
    if client.find(v.db_path) is not None or client.starting(v.db_path):
        return
    bars = ProgressBars()
    try:
        read, left, problems = v.catch_up(notes, progress=bars if notes is None else None)
    except LenslinkError as exc:
        read, left, problems = 0, f"{exc}; see `lenslink status {v.root}`", []
    finally:
        bars.close()
    for path, problem in problems:
        click.echo(f"warning: {path + ': ' if path else ''}{problem}", err=True)
    if read:
        click.echo(f"read {read} changed {plural(read, 'note')} first", err=True)
    if left:
        click.echo(f"warning: notes changed since the last index are ranked as they were: {left}",
                   err=True)


def score_text(score: float, kind: str) -> str:
    """A probability as `72.0%`; a percentile as `p95` (better than 95% of candidate
    pairs), `max` for the best of them."""
    if kind == "probability":
        return f"{score:.1%}"
    return "max" if score >= 1 else f"p{math.floor(score * 100 + 1e-9)}"


def score_legend(kind: str) -> str:
    """What `score_text`'s numbers mean, for the line above a list of them."""
    if kind == "probability":
        return "how likely you would link each note (calibrated on the vault's links)"
    return "pNN: scores better than NN% of candidate pairs, max: the best (a percentile)"


def vault_options(func):
    func = click.option("--precision", type=click.Choice(["int8", "fp32"]), expose_value=False,
                        callback=_set_precision, is_eager=True,
                        help="minilm weights: int8 (default, shipped, a little faster) or fp32 (needs "
                             "`pip install lenslink[fp32]`; vectors are stored apart).")(func)
    func = click.option("--embedder", metavar="NAME",
                        help="Embedder to index with (default: from .lenslink.toml, else "
                             "minilm); a command that ranks checks that the vault was indexed "
                             "with it.")(func)
    func = click.option("--db", type=click.Path(dir_okay=False), metavar="FILE",
                        help="Index database (default: per-vault file in the user data folder).")(func)
    # Checked by Vault (ConfigError): one line and exit code 1, not a usage error.
    return click.argument("vault", type=click.Path())(func)


class ProgressBars:
    """One click progress bar per stage, on stderr, only when stderr is a terminal."""

    def __init__(self):
        self.bar = None
        self.stage = None
        self.shown = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        if stage != self.stage:
            self.close()
            self.stage, self.shown = stage, 0
            self.bar = click.progressbar(length=total, label=STAGES.get(stage, stage),
                                         file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lenslink")
def main():
    """Find related notes in an Obsidian vault through similarity lenses.

    \b
    Example:
      lenslink index ~/Notes && lenslink related ~/Notes "Sourdough starter"
    """


@main.command()
@vault_options
@click.option("--rebuild", is_flag=True, help="Forget the index and read every note again "
              "(stored vectors are reused).")
@click.option("--verify", is_flag=True, help="Read and hash every note, also those whose size "
              "and modification time are unchanged (the daemon does this once a day).")
@handle_errors
def index(vault, db, embedder, rebuild, verify):
    """Index the vault: read changed notes and embed what is new.

    \b
    Example:
      lenslink index ~/Notes
    """
    bars = ProgressBars()
    with Vault(vault, db=db, embedder=embedder) as v:
        try:
            report = v.index(rebuild=rebuild, progress=bars, verify=verify)
        finally:
            bars.close()
        untrained = v.trained_links() is None and v.link_count() >= TRAIN_HINT_LINKS
    for path, problem in report.problems:
        click.echo(f"warning: {path + ': ' if path else ''}{problem}", err=True)
    if not report.scanned:
        click.echo(f"warning: no Markdown notes (*.md) in {vault}, outside hidden folders and "
                   "`exclude`", err=True)
    click.echo(f"{report.scanned} notes: {report.parsed} read, {report.unchanged} unchanged, "
               f"{report.deleted} removed, {report.failed} failed, {report.opted_out} opted out; "
               f"{report.embedded} {plural(report.embedded, 'text')} embedded")
    if untrained:
        click.echo(f"hint: the notes have links: `lenslink train {vault}` learns each lens's "
                   "ranking from them (a running `lenslink serve` does it by itself)", err=True)


@main.command()
@vault_options
@click.argument("note", required=False)
@click.option("--lens", "-l", metavar="LENS", help="Lens to rank with (default: the first).")
@click.option("--top", "-n", type=click.IntRange(1, 1000), help="How many notes (default: the lens's top_k).")
@click.option("--min-score", type=click.FloatRange(0, 1), metavar="S",
              help="Leave out notes scored below S (default: the lens's min_score; 0 keeps all).")
@click.option("--all", "all_notes", is_flag=True, help="Every note the lens applies to.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--explain", is_flag=True, help="Show why: lens, strongest signals, matched passage.")
@handle_errors
def related(vault, db, embedder, note, lens, top, min_score, all_notes, as_json, explain):
    """Show the notes related to NOTE (a path or a title; a title several notes share
    is an error that lists their paths).

    Scores are calibrated: with a trained lens (`lenslink train`), the probability that
    you would link the pair; otherwise a percentile among all candidate pairs (p95).

    \b
    Examples:
      lenslink related ~/Notes "projects/Garden irrigation.md" --lens topic
      lenslink related ~/Notes --all --json --top 20 > related.json
    """
    if bool(note) == bool(all_notes):
        raise click.UsageError("give a NOTE or --all")
    with Vault(vault, db=db, embedder=embedder, create=False) as v:
        chosen = chosen_embedder(v, embedder)
        catch_up(v, None if all_notes else [note])
        if all_notes:
            found = v.related_all(lens, top, min_score or 0.0)
            if as_json:
                click.echo(json.dumps({p: [r.path for r in rs] for p, rs in found.items()},
                                      ensure_ascii=False, indent=1))
            elif not found:
                click.echo(f"no notes under lens {v.config.lens(lens).name!r}" if v.store.note_count()
                           else f"no notes: {v.root} has no Markdown notes to index")
            else:
                for path, rs in found.items():
                    click.echo(f"{path}: " + ", ".join(r.path for r in rs))
            return
        path = v.resolve_note(note)
        # A daemon serving this vault answers at once; loading the ranking takes seconds
        # on a large vault. Not when the embedder was chosen here: the daemon's may differ.
        # a daemon ranks with the lens's min_score
        results = None if chosen or min_score is not None else \
            client.related(v.db_path, v.config, path, lens, top)
        if results is None:
            results = v.related(path, lens, top, min_score)
        lens_name, rewrite = v.config.lens(lens).name, v.config.lens(lens).rewrite
        own = v.rewrites(path, lens) if explain else []
        why = None
        if not results:  # as the API's why_none
            why = v.unranked_reason(path, lens) or (v.below_floor(path, lens) if min_score is None else None)
    if as_json:
        click.echo(json.dumps({"note": path, "lens": lens_name,
                               "related": [r.to_dict() for r in results], "why_none": why},
                              ensure_ascii=False, indent=1))
        return
    if not results:
        click.echo(f"no related notes for {path} under lens {lens_name!r}" + (f": {why}" if why else ""))
    if explain and rewrite:  # the lens embeds LLM rewrites: show this note's own
        shown = textwrap.shorten(own[0], 240, placeholder="\u2026") if own else \
            "(not rewritten yet; run `lenslink index`)"
        click.echo(f"rewritten by {rewrite.model}: {shown}")
    if results:
        click.echo(f"{path}, lens {lens_name!r}: {score_legend(results[0].score_kind)}")
    for r in results:
        mark = " (linked)" if r.linked else ""
        click.echo(f"{score_text(r.score, r.score_kind):>6s}  {r.path}{mark}")
        if explain:
            signals = ", ".join(f"{k} {v:+.2f}" for k, v in r.signals) or \
                f"cosine {r.cosine:.2f}, lexical {r.lexical:.2f}, " \
                f"title {'mentioned' if r.mentioned else 'not mentioned'}"
            click.echo(f"        lens {r.lens}; {r.score_kind}; signals: {signals}")
            click.echo(f"        {'rewritten passage' if rewrite else 'passage'}: {r.passage}")


@main.command()
@vault_options
@click.argument("notes", nargs=-1)
@click.option("--all", "all_notes", is_flag=True, help="Write the block of every note.")
@click.option("--dry-run", is_flag=True, help="Print a unified diff instead of writing.")
@click.option("--force", is_flag=True,
              help="Replace (or remove) blocks that were edited by hand (take them over).")
@click.option("--remove", is_flag=True,
              help="Take lenslink's block out instead (--all: out of every note in the vault).")
@handle_errors
def write(vault, db, embedder, notes, all_notes, dry_run, force, remove):
    """Write the "Related notes" block into NOTES (or --all).

    Only the block between the lenslink markers changes; a note that changed since it
    was read is left alone, and so is a block someone edited by hand (reported as
    `edited`; --force takes it over). --remove takes the block out (e.g. of a note that
    now opts out with `lenslink: false`, or of the whole vault; stop a daemon that
    writes blocks first, or it puts them back).

    \b
    Examples:
      lenslink write ~/Notes "daily/2026-11-05.md" --dry-run
      lenslink write ~/Notes --all
      lenslink write ~/Notes --all --remove --dry-run
    """
    if bool(notes) == bool(all_notes):
        raise click.UsageError("give NOTES or --all, not both" if notes else "give NOTES or --all")
    try:
        v = Vault(vault, db=db, embedder=embedder, create=False)
    except ConfigError as exc:  # taking blocks out needs no lens: an uninstall still works
        if not remove:
            raise
        click.echo(f"warning: {exc}; removing blocks with the default settings", err=True)
        v = Vault(vault, db=db, embedder=embedder, create=False, config=default_config())
    with v:
        if remove:
            if client.find(v.db_path) is not None:
                click.echo("warning: a lenslink daemon is serving this vault; with --write auto "
                           "it puts the blocks of notes that change back", err=True)
            outcomes = v.remove_blocks(list(notes) or None, dry_run=dry_run, force=force)
            nothing = "no note to remove a block from"
        else:
            chosen_embedder(v, embedder)
            catch_up(v, list(notes) or None)
            outcomes = v.write(list(notes) or None, dry_run=dry_run, force=force)
            nothing = "nothing to write" if v.store.note_count() else \
                f"nothing to write: {v.root} has no Markdown notes to index"
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
        if o.status == "diff":
            click.echo(o.detail, nl=False)
        elif o.status in ("error", "skipped", "edited"):
            click.echo(f"{o.status}: {o.path}: {o.detail}", err=True)
    click.echo(", ".join(f"{n} {plural(n, s) if s in ('diff', 'error') else s}"
                         for s, n in sorted(counts.items())) or nothing, err=dry_run)
    if counts.get("error"):
        sys.exit(1)


@main.command()
@vault_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def lenses(vault, db, embedder, as_json):
    """List the vault's lenses (from .lenslink.toml or the defaults).

    \b
    Example:
      lenslink lenses ~/Notes
    """
    with Vault(vault, db=db, embedder=embedder, create=False) as v:
        found, source = v.lenses(), v.config.source
    if as_json:
        click.echo(json.dumps(found, indent=1, ensure_ascii=False))
        return
    click.echo(f"lenses from {source}:")
    for lens in found:
        shown = functools.partial(json.dumps, ensure_ascii=False)
        about = lens["description"] or f"(no description) template {shown(lens['template'])}" + (
            f", prefix {shown(lens['prefix'])}" if lens["prefix"] else "")
        click.echo(f"  {lens['name']:12s} {about}")


@main.command()
@vault_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def status(vault, db, embedder, as_json):
    """Show what the index holds and which notes have problems.

    \b
    Example:
      lenslink status ~/Notes
    """
    with Vault(vault, db=db, embedder=embedder, create=False) as v:
        info = v.status()
        if not as_json:
            warn_if_config_changed(v)
    if as_json:
        click.echo(json.dumps(info, indent=1, ensure_ascii=False))
        return
    created = "" if Path(info["database"]).exists() else " (not created yet: `lenslink index` does)"
    click.echo(f"vault     {info['vault']}\ndatabase  {info['database']}{created}\n"
               f"config    {info['config']}\nembedder  {info['embedder'] or '(not indexed yet)'}\n"
               f"notes     {info['notes']} ({info['opted_out']} opted out), "
               f"{info['links']} links, {info['embedded_texts']}/{info['texts']} texts embedded"
               + ("" if info["embedded_texts"] >= info["texts"] else
                  f" (`lenslink index {info['vault']}` embeds the rest, or says what fails)"))
    writer = info.get("writer")
    click.echo(f"machine   {info['machine']}" + (
        "" if not writer else f" (blocks are written by {writer})"
        if writer.casefold() != info["machine"].casefold() else " (writes the blocks)"))
    for lens in info["lenses"]:
        click.echo(f"lens      {lens['name']}: {lens['sources']} sources, "
                   f"{lens['candidates']} candidates, {lens['ranking']} ranking"
                   + _why_unsupervised(lens, info["trained_links"]) + f", scores: {lens['scores']}")
    for path, problems in info["problems"].items():
        for p in problems:
            click.echo(f"problem   {path}: {p}")


def _why_unsupervised(lens: dict, trained_links: int | None) -> str:
    if lens["ranking"] == "learned":
        return ""
    if not (lens["sources"] and lens["candidates"]):
        return " (no notes to rank)"
    if trained_links is None:
        return " (not trained yet: `lenslink train` learns it from the vault's links)"
    return " (not learned: too few links, or it did not beat this one; `lenslink train` says which)"


@main.command()
@vault_options
@click.option("--lens", "-l", metavar="LENS", help="Train only this lens (default: all).")
@click.option("--seed", default=0, show_default=True, help="Seed for folds and sampling.")
@handle_errors
def train(vault, db, embedder, lens, seed):
    """Learn each lens's ranking from the vault's own [[links]].

    Lenses with too few links keep the unsupervised ranking (shown in `status`).
    Pairs judged by `lenslink label` (notes unchanged since) are extra training pairs.

    \b
    Example:
      lenslink train ~/Notes --lens topic
    """
    with Vault(vault, db=db, embedder=embedder, create=False) as v:
        chosen_embedder(v, embedder)
        reports = v.train(lens, seed)
    for name, r in reports.items():
        if not r["trained"]:
            click.echo(f"{name}: not trained ({r['reason']})")
            continue
        labels = f" ({r['labels']} of them labelled by a model)" if r.get("labels") else ""
        click.echo(f"{name}: trained on {r['queries']} linked notes, {r['pairs']} pairs{labels}; "
                   f"held-out log loss {r['heldout_log_loss']:.4f} "
                   f"(fusion alone {r['heldout_log_loss_fusion']:.4f}), ECE {r['heldout_ece']:.4f}")


@main.command()
@vault_options
@click.option("--lens", "-l", metavar="LENS", help="Lens whose pairs to label (default: the first).")
@click.option("--pairs", "-n", default=50, show_default=True, type=click.IntRange(1, 100_000),
              help="How many pairs to ask about.")
@click.option("--seed", default=0, show_default=True, help="Seed of the sample of source notes.")
@handle_errors
def label(vault, db, embedder, lens, pairs, seed):
    """Ask a chat model whether you would link suggested pairs; `train` learns from it.

    The model is the [label] table of .lenslink.toml (model, base_url, api_key_env,
    timeout, max_retries; nothing is sent without it). It sees the titles and the start
    of both notes of each top unlinked suggestion not labelled yet, and answers yes or
    no. Each answer is stored at once; an edited note's labels are no longer used.

    \b
    Example:
      lenslink label ~/Notes --lens topic --pairs 100 && lenslink train ~/Notes
    """
    bars = ProgressBars()
    with Vault(vault, db=db, embedder=embedder, create=False) as v:
        chosen_embedder(v, embedder)
        try:
            r = v.label(lens, pairs, seed, progress=bars)
        finally:
            bars.close()
    if r.pairs == 0:
        click.echo(f"{r.lens}: nothing to label (each note's top suggestions are linked or "
                   f"already labelled by {r.model})")
    else:
        fewer = f" (only {r.pairs} left to ask about)" if r.pairs < r.wanted else ""
        click.echo(f"{r.lens}: {r.labelled} pairs labelled by {r.model}{fewer}: {r.yes} yes, "
                   f"{r.no} no; {r.skipped} skipped (no clear yes or no)")
    if r.interrupted:
        click.echo("interrupted; the labels so far are kept", err=True)
        sys.exit(130)
    if r.error:
        raise click.ClickException(f"{r.error}; the labels so far are kept")


@main.command("eval")
@vault_options
@click.option("--lens", "-l", metavar="LENS", help="Lens to evaluate (default: the first).")
@click.option("--holdout", default=0.2, show_default=True, type=click.FloatRange(0, 1),
              help="Fraction of linked notes made new (their links and backlinks removed); "
              "0: every note with 2+ links loses its links at once and nothing is learned.")
@click.option("--seed", default=0, show_default=True, help="Seed of the held-out draw.")
@click.option("--keep-text", is_flag=True, help="Keep removed links' visible text (easier).")
@click.option("--out", type=click.Path(file_okay=False), help="Keep the task vault, gold and "
              "predictions in this folder (to score them with other tools).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def eval_command(vault, db, embedder, lens, holdout, seed, keep_text, out, as_json):
    """Measure how well each ranking recovers the vault's own links.

    A share of the notes with 2+ links become "new": their links (and the links to
    them) are removed, the rankings learn from the links left, and each new note's
    ranking is scored against the links it had: recall@5/10, MRR@10, nDCG@10 for the
    learned ranker and the baselines. lenslink's own blocks are not the author's links
    and are left out. (The protocol of lenslink's shared evaluation scripts,
    make_task.py --holdout --drop-text and score.py.)

    \b
    Example:
      lenslink eval ~/Notes --holdout 0.2 --seed 0
    """
    from .evaluate import fmt_table, run_eval

    results = run_eval(vault, lens=lens, holdout=holdout, seed=seed, drop_text=not keep_text,
                       out=out, db=db, embedder=embedder, progress=ProgressBars())
    if as_json:
        click.echo(json.dumps(results, indent=1))
    else:
        if holdout:
            click.echo(f"{results['notes']} held-out notes, lens {results['lens']}")
        else:  # the shared protocol's --holdout 0: no split, nothing learned
            click.echo(f"{results['notes']} notes (every note with 2+ links, all made new at once; "
                       f"nothing learned: --holdout 0), lens {results['lens']}")
        click.echo(fmt_table(results["methods"]))


@main.command()
@vault_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 picks a free one).")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (unsafe).")
@click.option("--write", "write_policy", type=click.Choice(["off", "manual", "auto"]),
              default="manual", show_default=True,
              help="Write-back: never, only when asked, or after a note has been quiet.")
@click.option("--quiet", default=30.0, show_default=True, type=click.FloatRange(0),
              help="Seconds a note must be unchanged before auto write-back.")
@click.option("--debounce", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Seconds without file events before a batch is indexed.")
@click.option("-v", "--verbose", is_flag=True,
              help="Log every batch (what was synced and embedded) and every block written.")
@handle_errors
def serve(vault, db, embedder, host, port, allow_remote, write_policy, quiet, debounce, verbose):
    """Watch the vault, keep the index current and serve the local API.

    Stops cleanly on Ctrl-C or SIGTERM. The API needs the token from `lenslink token`.

    \b
    Example:
      lenslink serve ~/Notes --write auto --quiet 30
    """
    import logging

    from .daemon import serve as run

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    run(vault, db=db, embedder=embedder, host=host, port=port, allow_remote=allow_remote,
        write_policy=write_policy, quiet=quiet, debounce=debounce,
        on_ready=lambda addr: click.echo(f"lenslink serving {vault} on http://{addr[0]}:{addr[1]}/v1",
                                         err=True))


@main.command()
@handle_errors
def token():
    """Print the API token for the Obsidian plugin's settings (created on first use).

    \b
    Example:
      lenslink token
    """
    from .daemon import load_token

    click.echo(load_token())


@main.command()
@vault_options
@click.option("--lens", "-l", "lens_names", multiple=True, metavar="LENS",
              help="Lens to map; repeat for panels side by side (default: the first lens).")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Image to write (.png, .svg or .pdf), in an existing folder.")
@click.option("--color", type=click.Choice(["folder", "tag"]), default="folder", show_default=True,
              help="Colour notes by top folder, or by their first tag not shared by all notes.")
@click.option("--label", default=8, show_default=True, type=click.IntRange(0), metavar="N",
              help="Name N notes per panel (nearest its centre and edges); every note when "
                   "a lens has 15 or fewer.")
@handle_errors
def plot(vault, db, embedder, lens_names, out, color, label):
    """Draw a 2-D map (PCA) of the notes as each lens sees them, one panel per lens.

    Needs matplotlib: pip install 'lenslink[plot]'.

    \b
    Example:
      lenslink plot ~/Notes --lens cuisine --lens climate --color tag --out cities.png
    """
    from . import plot as plot_mod

    plot_mod.require_matplotlib()  # before the index is loaded
    plot_mod.check_out(out)
    with Vault(vault, db=db, embedder=embedder, create=False) as v:
        chosen_embedder(v, embedder)
        maps = plot_mod.lens_maps(v.ranking(), list(lens_names) or [None], color, label)
    plot_mod.render(maps, out)
    click.echo(f"wrote {out}: " + ", ".join(f"{m.lens} ({len(m.paths)} notes)" for m in maps))


if __name__ == "__main__":  # pragma: no cover
    main()
