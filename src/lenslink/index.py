"""An incremental sync of a vault into the store: read what changed, embed what is new.

The order makes interruption safe: each note's row and lens texts are committed
together (NOTE_BATCH notes per transaction), then the texts of lenses with a `rewrite` are rewritten (cache first, then the
chat model) one by one, then missing vectors are embedded and committed batch by batch,
so a run killed anywhere is completed by the next one without re-doing what was stored.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import boilerplate
from . import notes as notes_mod
from . import writeback
from .errors import NoteError, RewriteError, RewriteRejected
from .lenses import Lens, NoteMeta, RewriteSettings, VaultConfig
from .links import link_names, may_resolve_to, note_name, parse_links
from .rewrite import Rewriter, prompt_hash
from .store import MASK_LENSES, PENDING, NoteRow, Store

PARSER_VERSION = "7"
LEX_CHARS = 100_000
# Notes stored per transaction: one commit per note made a first index of 100,000 notes
# write its journal 20 GB; a killed sync loses at most this many notes' work.
NOTE_BATCH = 256
# Vectors no chunk uses after a config change are kept this long (at most as many as are
# in use): trying a lens and going back costs no embedding.
UNUSED_VECTOR_DAYS = 7

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class SyncReport:
    """What one sync did; `problems` are (path, message) pairs new in this run."""
    scanned: int = 0
    parsed: int = 0
    unchanged: int = 0
    deleted: int = 0
    embedded: int = 0
    rewritten: int = 0  # texts the chat model rewrote (cache hits not counted)
    failed: int = 0
    opted_out: int = 0  # notes in the index that opt out after a full sync (else 0)
    problems: list[tuple[str, str]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)   # notes stored anew (new or edited)
    removed: list[str] = field(default_factory=list)   # notes gone from the vault
    relinked: bool = False  # every note's links were resolved again (the set of notes changed)
    embedded_paths: list[str] = field(default_factory=list)  # notes with a text embedded now
    touched: list[str] = field(default_factory=list)  # bytes changed, nothing lenslink reads did
    # {path: (content_hash, mtime_ns, size, signature)} as stored before this sync stored
    # anything (after the reset of a rebuild): set first, so a caller has it even when the
    # sync fails half way; of `targeted` only, when set
    known: dict | None = field(default=None, repr=False)
    targeted: list[str] | None = None  # the notes a sync of some notes looked at (sorted)

    def known_hashes(self) -> dict[str, str]:
        """{path: content_hash} of `known`."""
        return {path: state[0] for path, state in self.known.items()}


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_signature(config: VaultConfig) -> str:
    """Changes whenever any lens's texts could change; notes are then re-read."""
    parts = [PARSER_VERSION] + [f"{lens.name}={lens.signature}" for lens in config.lenses]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def note_meta(note) -> NoteMeta:
    return NoteMeta(path=note.path, tags=tuple(note.tags), frontmatter=note.frontmatter,
                    is_daily=note.is_daily)


def lens_chunks(note, lenses: tuple[Lens, ...]) -> list[tuple[str, int, str, str, str | None]]:
    """(lens, chunk number, text hash, text, original) for every lens that the note takes
    part in. A lens with a rewrite keeps its text as `original` and waits (PENDING) for
    the rewrite, which is what gets embedded."""
    meta = note_meta(note)
    out = []
    for lens in lenses:
        if not lens.applies(meta):
            continue
        for i, t in enumerate(lens.texts(note)):
            out.append((lens.name, i, PENDING, "", t) if lens.rewrite else
                       (lens.name, i, text_hash(t), t, None))
    return out


def sync(root: Path, config: VaultConfig, store: Store, embedder, *, rebuild: bool = False,
         paths: list[str] | None = None, progress: Progress | None = None,
         make_rewriter: Callable[[RewriteSettings], Rewriter] = Rewriter.from_settings,
         verify: bool = False, report: SyncReport | None = None) -> SyncReport:
    """Bring the store up to date with the vault (all of it, or only `paths`).

    A note whose size and modification time are as stored is not read (the fast path
    of a restart); `verify` reads and hashes every note anyway, which catches a change
    whose modification time was restored (some sync and backup tools do that).
    `report`: the report to fill in (the caller keeps what a failed sync did)."""
    report = report if report is not None else SyncReport()
    progress = progress or (lambda stage, done, total: None)
    if rebuild:
        store.reset()
    if paths is None:
        scan = notes_mod.scan_vault(root, config.exclude, hidden_suffix=writeback.TEMP_SUFFIX)
        for temp in writeback.remove_stale_temp_files(root, scan.hidden):  # a killed write's
            report.problems.append(("", f"removed a temp file left by an interrupted write: "
                                        f"{temp.relative_to(root).as_posix()}"))
    else:  # only these notes: the rest of the vault is neither walked nor read from the store
        paths = sorted(set(paths))
        scan = notes_mod.scan_paths(root, paths, config.exclude)
        report.targeted = paths
    found = list(scan.paths)
    report.problems += list(scan.problems)  # (path, message) pairs already
    report.scanned = len(found)
    store.clear_failures(keep=found, among=paths)  # a failed note that is gone has no problem any more
    known = report.known = store.note_states(paths)
    gone = set(known) - set(found)
    # vectors that may be unused now: the texts of notes gone (also those they retired)
    old_hashes = store.chunk_hashes(gone) | store.take_retired(gone) if gone else set()
    # What a finished sync vouches for, cleared until this one finishes: a sync that is
    # interrupted after storing notes leaves the next one to relink, recount the active
    # lenses and look for every missing vector.
    flags = {k: store.get_meta(k) for k in ("links_signature", "active_lenses", "embedded_all")}
    # the last sync stopped before its end (e.g. the embedder failed): what it made
    # unused was not pruned
    interrupted = store.get_meta("sync_finished") == ""
    store.set_meta("sync_finished", "")
    for key, value in flags.items():
        if value:
            store.set_meta(key, "")
    report.deleted = store.delete_notes(sorted(gone))
    signature = config_signature(config)
    todo = found
    report.removed = sorted(gone)
    common = _boilerplate(store)
    total, skipped = len(todo), 0
    if not verify:  # the fast path first, in one tight loop (a restart at 100,000 notes)
        todo, skipped = _stat_changed(root, todo, known, signature)
        report.unchanged += skipped
        progress("read", skipped, total)
    for start in range(0, len(todo), NOTE_BATCH):
        with store.batch():
            for done, rel in enumerate(todo[start:start + NOTE_BATCH], skipped + start + 1):
                if _sync_note(root, rel, known.get(rel), signature, config, store, report,
                              old_hashes, common, hash_check=verify):
                    report.changed.append(rel)
                progress("read", done, total)
    if paths is None and (report.changed or gone or common != _boilerplate_if_empty(store)):
        # a full sync that stored something: the notes whose boilerplate lines changed
        # are read again
        now = boilerplate.frequent((p, boilerplate.from_blob(b)) for p, b in store.line_keys())
        if now != common:
            changed = boilerplate.flipped(common, now)
            again = [p for p, b in store.line_keys() if posixpath.dirname(p) in changed
                     and np.isin(boilerplate.from_blob(b), changed[posixpath.dirname(p)]).any()]
            states = store.note_states()
            for start in range(0, len(again), NOTE_BATCH):
                with store.batch():
                    for done, rel in enumerate(again[start:start + NOTE_BATCH], start + 1):
                        if _sync_note(root, rel, states.get(rel), signature, config, store, report,
                                      old_hashes, now, force=True) and rel not in report.changed:
                            report.changed.append(rel)
                        progress("boilerplate", done, len(again))
            store.set_meta("boilerplate", boilerplate.dumps(now))  # once every note has it
    added = [p for p in report.changed if p not in known]
    if flags["links_signature"] != signature:
        _relink(store)
        report.relinked = True
    elif gone or added:  # what links naming these notes resolve to can change
        _relink(store, report.changed, added, sorted(gone))
        report.relinked = True
    elif report.changed:
        _relink(store, report.changed)  # the same notes as before
    store.set_meta("links_signature", signature)
    # which lenses are active changes only with notes: a sync that stored none reuses it
    active = _recorded_lenses(flags["active_lenses"], signature) \
        if not report.changed and not gone else None
    if active is None:
        active = active_lenses(store, config)
    store.set_meta("active_lenses", f"{signature}:{','.join(active)}")
    report.rewritten = rewrite_missing(store, config, active, report, progress, make_rewriter)
    embedded: list[str] = []
    # After a sync that left nothing missing, only the notes stored now can miss vectors.
    complete = _complete_mark(embedder.id, active)
    only = report.changed if flags["embedded_all"] == complete else None
    report.embedded = embed_missing(store, embedder, active, progress, embedded, only)
    report.embedded_paths = store.paths_of_texts(embedded)
    if not store.pending_rewrite_paths(active):
        store.set_meta("embedded_all", complete)
    store.prune_vectors(old_hashes)  # texts of notes edited, deleted or opted out
    if paths is None and (report.changed or gone or rebuild or interrupted):
        # everything else no chunk uses (what an interrupted sync left) goes too, but the
        # texts notes retired for a new config are kept a few days, so that a config
        # changed back needs no embedding; a rebuild drops those too
        store.prune_vectors(keep_days=0 if rebuild else UNUSED_VECTOR_DAYS)
    store.prune_rewrites()
    store.set_meta("embedder", embedder.id)
    if paths is None:  # every note was matched against `exclude`
        store.set_meta("synced_exclude", _exclude_mark(config))
        report.opted_out = store.opted_out_count()  # (not for the daemon's syncs of a few)
    # (a sync of some notes does not prune for an interrupted one: the next full one does)
    store.set_meta("sync_finished", "" if interrupted and paths is not None else "1")
    return report


def _exclude_mark(config: VaultConfig) -> str:
    return json.dumps(sorted(config.exclude))


def _boilerplate_if_empty(store: Store) -> boilerplate.Boilerplate:
    """What `_boilerplate` returns, except a never computed set ({} and no meta yet)
    that must be computed now: a sentinel that compares unequal."""
    return {"\0never": frozenset()} if store.get_meta("boilerplate") is None else _boilerplate(store)


def _boilerplate(store: Store) -> boilerplate.Boilerplate:
    """The boilerplate line keys (per folder) the stored texts were made with."""
    return boilerplate.loads(store.get_meta("boilerplate"))


def changed_since_index(root: Path, config: VaultConfig, store: Store,
                        paths: list[str] | None = None) -> list[str]:
    """The notes (of `paths`, or of the whole vault) that a sync would look at: new,
    gone, or with another size or modification time than stored (nothing is read)."""
    if paths is None:
        scan = notes_mod.scan_vault(root, config.exclude, hidden_suffix=writeback.TEMP_SUFFIX)
    else:
        paths = sorted(set(paths))
        scan = notes_mod.scan_paths(root, paths, config.exclude)
    found = list(scan.paths)
    known = store.note_states(paths)
    todo, _ = _stat_changed(root, found, known, config_signature(config))
    # a note the index refused (binary, too large: not stored) and not modified since is
    # no news; a stored note whose size or time differ always is
    failed = store.failed_at()
    todo = [rel for rel in todo if rel in known or rel not in failed
            or _modified_after(root / rel, failed[rel])]
    return sorted(set(todo) | (set(known) - set(found)))


def _modified_after(path: Path, when: float) -> bool:
    try:
        return path.stat().st_mtime > when
    except OSError:
        return True


def _stat_changed(root: Path, todo: list[str], known: dict, signature: str) -> tuple[list[str], int]:
    """(the notes of `todo` that `_sync_note` must look at, how many others are stored
    with their current size and modification time under `signature`)."""
    out, skipped, top = [], 0, os.fspath(root)
    for rel in todo:
        state = known.get(rel)
        if state is not None:
            try:
                st = os.stat(os.path.join(top, rel))
            except OSError:
                out.append(rel)  # `_sync_note` reports it
                continue
            if state[1:] == (st.st_mtime_ns, st.st_size, signature):  # as `_sync_note` checks
                skipped += 1
                continue
        out.append(rel)
    return out, skipped


def _sync_note(root: Path, rel: str, known, signature: str, config: VaultConfig,
               store: Store, report: SyncReport, old_hashes: set[str],
               common: boilerplate.Boilerplate | None = None, force: bool = False,
               hash_check: bool = False) -> bool:
    """Parse and store one note if it changed (or if `force`d); True when the store
    changed. Lines in `common` (boilerplate) are left out of its texts."""
    try:
        st = os.stat(os.path.join(root, rel))
    except OSError as exc:
        report.failed += 1
        report.problems.append((rel, f"cannot read: {exc.strerror or exc}"))
        return False
    if known and known[1:] == (st.st_mtime_ns, st.st_size, signature) and not force:
        same = True  # the fast path: size and mtime as stored
        if hash_check:  # the sweep: hash the bytes first, parse only what really changed
            try:
                with open(os.path.join(root, rel), "rb") as f:
                    same = hashlib.sha256(f.read()).hexdigest() == known[0]
            except OSError:
                same = False
        if same:
            report.unchanged += 1
            return False
    try:
        note = notes_mod.read_note(root, rel)
    except NoteError as exc:
        message = str(exc).removeprefix(f"{rel}: ")  # the path is shown beside it
        report.failed += 1
        report.problems.append((rel, message))
        store.record_failure(rel, message)
        return False
    if not force and known and known[0] == note.content_hash and known[3] == signature:
        # unchanged (a block lenslink wrote is caught by `same_note` below, which also
        # sees an edit that was undone back to the bytes lenslink wrote)
        store.touch_note(rel, note.mtime_ns, note.size, note.content_hash)
        report.unchanged += 1
        return False
    keys = boilerplate.note_keys(note.clean_text)
    # Boilerplate is left out of what is embedded; lexical signals keep every line (idf
    # already discounts words that are everywhere, and a line like ```rust says something).
    lines = (common or {}).get(note.folder, frozenset())
    embedded = dataclasses.replace(note, clean_text=boilerplate.strip(note.clean_text, lines))
    chunks = [] if note.opted_out else lens_chunks(embedded, config.lenses)
    # Tags carry a vault's concept hierarchy (`computing/cpp/coroutine`): lexical signals
    # and title/alias mentions read them with the names (measured in docs/quality.md).
    names = [note.title, *note.aliases, " ".join(note.tags)]
    lex = "" if note.opted_out else "\n".join([*names, note.clean_text])[:LEX_CHARS]
    query = "" if note.opted_out else "\n".join([*names, bare_text(note.body)])[:LEX_CHARS]
    row = NoteRow(
        path=rel, title=note.title, folder=note.folder, content_hash=note.content_hash,
        mtime_ns=note.mtime_ns, size=note.size, signature=signature,
        opted_out=note.opted_out, is_daily=note.is_daily, tags=tuple(note.tags),
        aliases=tuple(note.aliases), frontmatter=dict(note.frontmatter),
        problems=tuple(note.problems), raw_links=tuple(note.links))
    blob = boilerplate.to_blob(keys)
    if known and known[3] == signature and store.same_note(row, lex, query, chunks, blob):
        # only bytes that lenslink does not read changed (e.g. the block, written by the
        # plugin or another computer): nothing downstream changes, nothing is re-ranked
        store.touch_note(rel, note.mtime_ns, note.size, note.content_hash)
        if known[0] != note.content_hash:
            report.touched.append(rel)
        if not force:  # (a note read again for boilerplate was counted already)
            report.unchanged += 1
        return False
    if not force:
        report.parsed += 1
        report.problems += [(rel, p) for p in note.problems]
    if known:
        old = store.chunk_hashes([rel])
        if known[0] != note.content_hash or note.opted_out:
            # its words changed, or it opts out: its texts go at once, retired ones too
            old_hashes |= old | store.take_retired([rel])
        else:  # re-read for a new config (or boilerplate): kept a while
            store.retire(rel, old - {c[2] for c in chunks})
    store.put_note(row, lex, query, chunks, blob, lens_masks(config, note_meta(note), note.opted_out))
    return True


def bare_text(body: str) -> str:
    """The body with links to notes removed, text and all: what a note searches with, so
    that it looks the same whether or not its author has linked it yet (a link's text
    would otherwise give the answer away to the ranker). URLs keep their text."""
    out, pos = [], 0
    for link in parse_links(body):
        if link.start < pos:
            continue
        out.append(body[pos:link.start])
        if link.markdown and not link.path and not link.embed:
            out.append(link.alias)
        pos = link.end
    out.append(body[pos:])
    return "".join(out)


def _relink(store: Store, sources: list[str] | None = None, added: list[str] = (),
            removed: list[str] = ()) -> None:
    """Resolve raw links against the stored paths: every note's (`sources` None), else
    those of `sources` and of every note with a link that may name a note `added` or
    `removed` (what only those links can resolve to changed). Rows are streamed."""
    if sources is None:
        resolver = notes_mod.Resolver(sorted(store.note_paths()))
        rows = store.raw_links()
    else:
        names = {note_name(p) for p in [*added, *removed]}
        affected = set(sources)
        if names:
            affected.update(path for path, links in store.raw_links()
                            if any(may_resolve_to(link, names) for link in links))
        sources = sorted(affected)
        rows = list(store.raw_links(sources))
        # only the notes these links may name (a Resolver over every path: 0.6 s at 100,000)
        resolver = notes_mod.Resolver(store.paths_named(
            {n for path, links in rows for link in links for n in link_names(link, path)}))
    edges = []
    for path, links in rows:
        seen = set()
        for link in links:
            dst = resolver.resolve(link, path)
            if dst and dst != path and dst not in seen:
                seen.add(dst)
                edges.append((path, dst))
    if sources is None:
        store.replace_links(edges)
    else:
        store.replace_links_from(sources, edges)


def _recorded_lenses(saved: str | None, signature: str) -> list[str] | None:
    """The active lenses a finished sync recorded (`signature:name,name`), if recorded
    under this config signature."""
    head, _, names = (saved or "").partition(":")
    return [n for n in names.split(",") if n] if head == signature and saved else None


def _complete_mark(embedder_id: str | None, active: list[str]) -> str:
    """What `embedded_all` holds after a sync that left no vector missing."""
    return f"{embedder_id}|{','.join(active)}"


def recorded_state(store: Store, config: VaultConfig) -> tuple[list[str], bool]:
    """(active lenses, whether no vector is missing) as the last finished sync recorded
    them (cheap: what `status` shows); the lenses are counted when none are recorded."""
    active = _recorded_lenses(store.get_meta("active_lenses"), config_signature(config))
    if active is None:
        active = active_lenses(store, config)
    complete = store.get_meta("embedded_all") == _complete_mark(store.get_meta("embedder"), active)
    return active, complete


def config_outdated(store: Store, config: VaultConfig) -> bool:
    """Whether the last finished sync ran with lenses (or a parser) or, for the last full
    one, `exclude` globs other than `config`'s: the index is then not what the config
    asks for until the next index."""
    saved = store.get_meta("active_lenses")
    if saved and saved.partition(":")[0] != config_signature(config):
        return True
    excluded = store.get_meta("synced_exclude")
    return excluded is not None and excluded != _exclude_mark(config)


def lens_masks(config: VaultConfig, meta: NoteMeta, opted_out: bool = False) -> tuple[int, int] | None:
    """(source, candidate) bit masks of the lenses a note takes part in (bit i: lens i),
    as the store keeps them; None when the config has more lenses than they hold."""
    if len(config.lenses) > MASK_LENSES:
        return None
    return (0, 0) if opted_out else _matches(config, meta)


def _matches(config: VaultConfig, meta: NoteMeta) -> tuple[int, int]:
    return (sum(1 << i for i, lens in enumerate(config.lenses) if lens.source.matches(meta)),
            sum(1 << i for i, lens in enumerate(config.lenses) if lens.candidates.matches(meta)))


def active_lenses(store: Store, config: VaultConfig) -> list[str]:
    """Lenses with at least one source and one candidate note: only these cost embedding
    (e.g. the default `project` lens in a vault without project notes costs nothing).

    Each stored note keeps its lens masks (`lens_masks`), so this is a few SQL queries;
    notes without them (an older store, another config) are matched here, streamed, and
    get theirs recorded."""
    signature = config_signature(config)
    n = len(config.lenses)
    kept = n <= MASK_LENSES
    source, candidate = store.lens_bits(signature, n) if kept else (0, 0)
    found = []
    for path, opted_out, tags, frontmatter, daily in store.note_filters(
            store.paths_without_lens_masks(signature) if kept else None):
        masks = (0, 0) if opted_out else _matches(config, NoteMeta(path, tags, frontmatter, daily))
        source, candidate = source | masks[0], candidate | masks[1]
        if kept:
            found.append((path, *masks))
        elif source & candidate == (1 << n) - 1:
            break  # every lens is active: the other notes cannot change that
    if found:
        store.set_lens_masks(signature, found)
    return [lens.name for i, lens in enumerate(config.lenses) if source >> i & candidate >> i & 1]


def rewrite_missing(store: Store, config: VaultConfig, lenses: list[str], report: SyncReport,
                    progress: Progress | None = None,
                    make_rewriter: Callable[[RewriteSettings], Rewriter] = Rewriter.from_settings,
                    ) -> int:
    """Give every waiting text of `lenses` (those with a `rewrite`) its rewrite, from the
    cache or else from the chat model, committing each at once; returns how many texts
    the model rewrote. When the endpoint fails, the lens's remaining texts wait for the
    next sync and the error goes into `report.problems`; nothing wrong is cached."""
    progress = progress or (lambda stage, done, total: None)
    todo = [(lens, store.pending_rewrites(lens.name)) for lens in config.lenses
            if lens.rewrite and lens.name in lenses]
    total, done, rewritten = sum(len(texts) for _, texts in todo), 0, 0
    for lens, texts in todo:
        settings, rewriter = lens.rewrite, None
        key_prompt = prompt_hash(settings.prompt)
        for n, (original, path) in enumerate(texts):
            key = (settings.model, key_prompt, text_hash(original))
            text = store.get_rewrite(*key)
            if text is None:
                try:
                    rewriter = rewriter or make_rewriter(settings)
                    text = rewriter.rewrite_text(original)
                except RewriteRejected as exc:  # this text only: the others go on
                    report.problems.append((path, f"lens {lens.name}: {exc}"))
                    done += 1
                    progress("rewrite", done, total)
                    continue
                except RewriteError as exc:
                    left = len(texts) - n
                    report.problems.append(("", f"lens {lens.name}: {exc}; {left} text(s) not "
                                                "rewritten, retried on the next index"))
                    done += left
                    progress("rewrite", done, total)
                    break
                store.put_rewrite(*key, text)
                rewritten += 1
            store.apply_rewrite(lens.name, original, text, text_hash(text))
            done += 1
            progress("rewrite", done, total)
    return rewritten


def embed_missing(store: Store, embedder, lenses: list[str],
                  progress: Progress | None = None, done_hashes: list[str] | None = None,
                  paths: list[str] | None = None) -> int:
    """Embed every text of `lenses` (of the notes `paths` only, if given) without a
    vector, committing batch by batch; returns how many texts were embedded (their
    hashes are added to `done_hashes`)."""
    progress = progress or (lambda stage, done, total: None)
    missing = [h for h, _ in store.missing_texts(embedder.id, lenses, paths)] if lenses else []
    done = 0
    for start in range(0, len(missing), embedder.batch_size):
        hashes = missing[start:start + embedder.batch_size]
        texts = store.texts_of(hashes)
        batch = [(h, texts[h]) for h in hashes if h in texts]
        if not batch:
            continue
        vectors = embedder.embed_batch([text for _, text in batch])
        store.put_vectors(embedder.id, [h for h, _ in batch], vectors)
        if done_hashes is not None:
            done_hashes += [h for h, _ in batch]
        done += len(batch)
        progress("embed", done, len(missing))
    return done
