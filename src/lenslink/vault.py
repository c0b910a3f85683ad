"""The library entry point: one vault, its config, store and embedder.

The CLI and the daemon both call these methods; no logic lives only in one of them.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import block as block_mod
from . import config as paths
from . import index as index_mod
from . import notes as notes_mod
from . import snapshot
from . import writeback
from .embedders import get_embedder
from .errors import (BlockEdited, BlockError, ConfigError, EmbedderError, LenslinkError, NotEmbedded,
                     NotFound, ReadOnlyNote, StoreError)
from .lenses import VaultConfig, load_config
from .notes import Resolver
from .rank import Related, VaultIndex
from .store import Reader, Store

log = logging.getLogger("lenslink.vault")


# `refresh(changed)` updates the snapshot in place of a full load until `patch_limit`
# notes changed since the last full load (idf, centring and calibration are then
# refreshed): 200 or 5% of the notes, but in a small vault (where a full load is quick)
# at most a fifth of its notes, and 10 at least
PATCH_MIN, PATCH_SHARE, PATCH_SMALL_SHARE, PATCH_FLOOR = 200, 0.05, 0.2, 10
PRECISION_ENV = "LENSLINK_PRECISION"  # minilm weights: int8 (default) or fp32
NOT_EMBEDDED = "not embedded yet under lens"  # a skipped write's detail starts so


def patch_limit(notes: int) -> float:
    """How many changed notes a snapshot of `notes` notes is updated for, at most."""
    return max(min(PATCH_MIN, max(PATCH_FLOOR, PATCH_SMALL_SHARE * notes)), PATCH_SHARE * notes)


@dataclass(frozen=True)
class WriteOutcome:
    path: str
    status: str  # written | removed | unchanged | diff | skipped | edited | error
    detail: str = ""


class Vault:
    """An opened vault. Use as a context manager or call `close()`."""

    def __init__(self, vault: str | os.PathLike, db: str | os.PathLike | None = None,
                 embedder: str | None = None, only_lens: str | None = None,
                 create: bool = True, config: VaultConfig | None = None):
        """`create=False`: a vault never indexed gets no database file (an empty one in
        memory stands in), for the commands that only read the index. `config`: instead
        of reading .lenslink.toml (the daemon's trainer uses the daemon's)."""
        self.root = paths.vault_root(vault)
        self.config: VaultConfig = config or load_config(self.root)
        if only_lens:  # evaluation: index and rank one lens only
            self.config = dataclasses.replace(self.config, lenses=(self.config.lens(only_lens),))
        self.db_path = paths.db_path(self.root, db)
        self.embedder_name = embedder or os.environ.get("LENSLINK_EMBEDDER") or self.config.embedder
        self.store = Store.open(self.db_path if create or self.db_path.exists() else ":memory:")
        self.reader = Reader(self.db_path)  # what every ranking of this vault reads texts with
        self._embedder = None
        self._index: VaultIndex | None = None
        # a long-lived process (the daemon) builds large snapshots in a child process
        self.build_apart = False
        self.stop_builds: threading.Event | None = None  # set: a build in a child is stopped

    def __enter__(self) -> "Vault":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.store.close()

    @property
    def embedder(self):
        """The embedder, loaded on first use (ranking needs only the stored id)."""
        if self._embedder is None:
            options = dict(self.config.embedder_options) if self.embedder_name == self.config.embedder else {}
            precision = os.environ.get(PRECISION_ENV)
            if precision:
                if self.embedder_name != "minilm":
                    raise ConfigError(f"--precision ({PRECISION_ENV}) applies to the minilm "
                                      f"embedder, not {self.embedder_name!r}")
                options["precision"] = precision
            self._embedder = get_embedder(self.embedder_name, **options)
        return self._embedder

    # -- indexing -----------------------------------------------------------------
    def index(self, rebuild: bool = False, paths: list[str] | None = None,
              progress=None, verify: bool = False,
              report: index_mod.SyncReport | None = None) -> index_mod.SyncReport:
        """Incremental sync of the vault into the store (everything with rebuild).

        The ranking in memory stays as it was until `refresh()` (the daemon keeps
        answering from it while it indexes); a rebuild removes the saved one."""
        try:
            report = index_mod.sync(self.root, self.config, self.store, self.embedder,
                                    rebuild=rebuild, paths=paths, progress=progress, verify=verify,
                                    report=report)
        finally:
            if rebuild:  # also when interrupted: the store was reset
                snapshot.discard(snapshot.path_for(self.db_path))
        self.store.set_meta("indexed_at", str(time.time()))
        if paths is None and (verify or self.store.get_meta("verified_at") is None):
            self.store.set_meta("verified_at", str(time.time()))  # every note was seen
        return report

    def refresh(self, changed: list[str] | None = None) -> VaultIndex:
        """Load the ranking state from the store and swap it in. With `changed` (the notes
        added, edited or deleted since the snapshot in memory), the snapshot is updated
        from those notes only, unless too many notes changed since the last full load."""
        embedder_id = self._indexed_embedder()
        current = self._index
        if changed is not None and current is not None:
            if not changed:
                return current
            if current.patched + len(changed) <= patch_limit(len(current.row)):
                self._index = current.updated(self.store, embedder_id, sorted(changed))
                return self._index
        self._index = self._load(embedder_id)
        return self._index

    def _load(self, embedder_id: str) -> VaultIndex:
        """The snapshot saved for the store's current state, or one built and saved."""
        key = snapshot.state_key(self.store, self.config, embedder_id)
        where = snapshot.path_for(self.db_path)
        index = snapshot.load(where, key, self.config)
        if index is None:
            stored = self.store.stored_times()  # before the load: see snapshot.facts
            index = self._brought_up_to_date(where, embedder_id, stored)
            if index is not None:  # saved as it is now: the next start loads it as it is
                snapshot.save(index, key, where, snapshot.facts(self.store, self.config, embedder_id,
                                                                index, stored))
        if index is None and self.build_apart and self.store.note_count() >= snapshot.APART_MIN_NOTES \
                and snapshot.build_apart(self.db_path, self.config, embedder_id, key, self.stop_builds):
            index = snapshot.load(where, key, self.config)
        if index is None:
            index = snapshot.build(self.store, self.config, embedder_id, key, where, self.reader)
        return self._attached(index, embedder_id)

    def _attached(self, index: VaultIndex, embedder_id: str) -> VaultIndex:
        # rankers are not in the snapshot: training does not make it stale
        index = index.with_models(VaultIndex.stored_models(self.store, self.config, embedder_id))
        index.reader = self.reader  # one pool per vault (a loaded snapshot's names the file it was saved beside)
        return index

    def load_saved(self) -> bool:
        """Load the snapshot saved for the store's current state if there is one (nothing
        is built or brought up to date); whether a ranking is in memory now. The daemon
        answers from it while its first sync runs."""
        embedder_id = self.store.get_meta("embedder")
        if self._index is None and embedder_id and self.store.note_count():
            index = snapshot.load(snapshot.path_for(self.db_path),
                                  snapshot.state_key(self.store, self.config, embedder_id), self.config)
            if index is not None:
                self._index = self._attached(index, embedder_id)
        return self._index is not None

    def _brought_up_to_date(self, where: Path, embedder_id: str,
                            stored: dict[str, float]) -> VaultIndex | None:
        """The saved snapshot of an earlier state, updated from the notes stored since
        (as the daemon updates its own; `stored`: the store's `stored_times()` now),
        when only notes changed, few of them counting the updates it holds already, and
        no vector was missing then or is now; else None (a full load follows)."""
        found = snapshot.load_stale(where, snapshot.base_key(self.store, self.config, embedder_id),
                                    self.config)
        if found is None:
            return None
        index, known = found
        active, complete = index_mod.recorded_state(self.store, self.config)
        if not (known["complete"] and complete and known["active"] == active):
            return None
        changed = snapshot.changed_since(index, known["stored_at"], stored)
        if index.patched + len(changed) > patch_limit(len(index.row)):
            return None
        log.info("ranking snapshot brought up to date from %d changed notes", len(changed))
        return index.updated(self.store, embedder_id, changed) if changed else index

    def ranking(self) -> VaultIndex:
        return self._index if self._index is not None else self.refresh()

    @property
    def ranked_config(self) -> VaultConfig:
        """The config of the ranking in memory (the daemon swaps `config` before it has
        loaded one with it); `config` when none is loaded."""
        index = self._index
        return index.config if index is not None else self.config

    @property
    def loaded(self) -> bool:
        """Whether a ranking snapshot is in memory (the daemon answers only from one)."""
        return self._index is not None

    # -- queries ------------------------------------------------------------------
    def _indexed_embedder(self) -> str:
        """The embedder id of the stored index; a clear error when there is none (a vault
        indexed with no notes has an index: an empty one)."""
        embedder_id = self.store.get_meta("embedder")
        if not embedder_id:
            raise StoreError(f"{self.root} has not been indexed yet; run `lenslink index {self.root}`")
        return embedder_id

    def check_embedder(self) -> None:
        """Refuse an embedder chosen for ranking (--embedder, --precision) that `index` would
        refuse, or that is not the one the vault was indexed with: its vectors are ranked."""
        indexed = self._indexed_embedder()
        try:
            chosen = self.embedder.id
        except EmbedderError as exc:  # e.g. --precision fp32 without its weights
            raise EmbedderError(f"{exc} (this vault was indexed with {indexed}: leave out "
                                "--embedder and --precision to rank with it)") from None
        if chosen != indexed:
            raise ConfigError(f"{self.root} was indexed with {indexed}, not {chosen}; leave out "
                              "--embedder and --precision, or run `lenslink index` with them first")

    def resolve_note(self, note: str) -> str:
        """A vault-relative path from a path, a path without .md, or a note title (an error
        when several notes have that title)."""
        if self._index is None:
            self._indexed_embedder()
        known = self._index.row if self._index is not None else self.store.note_paths()
        note = self._inside(note).replace("\\", "/")
        if note in known:
            return note
        found = Resolver(sorted(known)).named(note)
        if not found:
            raise NotFound(f"no note {note!r} in the index; " + self._not_indexed_because(note))
        if len(found) > 1:
            raise NotFound(f"{note!r} names {len(found)} notes: {', '.join(found)}; give the path")
        return found[0]

    def catch_up(self, notes: list[str] | None = None, progress=None
                 ) -> tuple[int, str | None, list[tuple[str, str]]]:
        """Read these notes (every note: None) where they changed since the last index, so
        that a command about them ranks and writes what they say now (a daemon does this
        as files change). A path to a note file the index does not know yet (new) is read
        too; names that match nothing are left for `resolve_note` to report. Only an index
        whose last sync finished complete is caught up (else the work would be the whole
        vault's). Returns (notes read or removed, why changed notes were left as indexed,
        or None, the sync's problems); an embedder or rewrite failure raises as `index`'s."""
        if not self.store.get_meta("embedder"):
            return 0, None, []  # never indexed: the command says so
        paths = None
        if notes is not None:
            paths = set()
            known = self.store.note_paths()
            for note in notes:
                rel = _md_path(self._inside(note))
                if rel not in known and ".." not in rel.split("/") \
                        and notes_mod.is_note_path(rel, self.config.exclude) and (self.root / rel).is_file():
                    paths.add(rel)  # a new note named by its path (not a look-alike's suffix)
                    continue
                try:
                    paths.add(self.resolve_note(note))
                except NotFound:
                    pass
            if not paths:
                return 0, None, []
        changed = index_mod.changed_since_index(self.root, self.config, self.store,
                                                None if paths is None else sorted(paths))
        if not changed:
            return 0, None, []
        if index_mod.config_outdated(self.store, self.config):
            return 0, None, []  # the whole index is behind: `warn_if_config_changed` says so
        if paths is not None and (self.store.get_meta("sync_finished") == ""
                                  or not index_mod.recorded_state(self.store, self.config)[1]):
            # (a whole vault's catch-up is the `lenslink index` that finishes it)
            return 0, ("the last index did not finish (texts wait for vectors or rewrites); "
                       f"run `lenslink index {self.root}`"), []
        indexed = self._indexed_embedder()
        if self.embedder.id != indexed:
            return 0, (f"the index was built with another embedder ({indexed}) than this "
                       f"command's; give it the --embedder and --precision `lenslink index` had"), []
        self._index = None  # ranked again from the store, whatever the sync did
        report = self.index(paths=changed if paths is not None else None, progress=progress)
        return report.parsed + report.deleted, None, list(report.problems)

    def _not_indexed_because(self, note: str) -> str:
        """Why a path is not in the index, for messages: by its name alone (hidden, or
        matching `exclude`), never by looking at files (nothing is told about them)."""
        rel = _md_path(note)
        if ".." not in rel.split("/") and not notes_mod.is_note_path(rel, self.config.exclude):
            return "lenslink skips it: it matches `exclude` in .lenslink.toml, or is hidden"
        return "check the name or run `lenslink index`"

    def related(self, note: str, lens: str | None = None, top: int | None = None,
                min_score: float | None = None) -> list[Related]:
        """The note's related notes (`min_score`: default the lens's), but notes whose file
        is gone since the last index (deleted, renamed: a daemon has not synced yet)."""
        return self._on_disk(self.ranking().related(self.resolve_note(note), lens, top, min_score))

    def _on_disk(self, found: list[Related]) -> list[Related]:
        return [r for r in found if (self.root / r.path).is_file()]

    def related_all(self, lens: str | None = None, top: int | None = None,
                    min_score: float = 0.0) -> dict[str, list[Related]]:
        """Every source note's related notes under a lens (for evaluation and scripts: top
        notes whatever their score, unless `min_score`)."""
        ranking = self.ranking()
        name = self.config.lens(lens).name
        return {p: ranking.related(p, name, top, min_score=min_score) for p in ranking.lens_notes(name)}

    # -- learning -----------------------------------------------------------------
    def train(self, lens: str | None = None, seed: int = 0, check=None) -> dict[str, dict]:
        """Fit each lens's ranker on the vault's links and store it; returns reports.
        `check()` is called often and may raise to abandon training (nothing is stored
        for a lens whose training was abandoned)."""
        from . import learn
        from .label import current_labels

        ranking = self.refresh()  # a full load: training sees current idf and centring
        embedder_id = self.store.get_meta("embedder")
        chosen = [self.config.lens(lens)] if lens else list(self.config.lenses)
        if not ranking.notes:
            return {l.name: {"trained": False, "reason": f"{self.root} has no Markdown notes to "
                             "index"} for l in chosen}
        reports = {}
        texts = functools.cache(ranking.all_query_texts)  # read once, for the lenses that train
        for lens_ in chosen:
            view = ranking.views[lens_.name]
            model = learn.train(ranking, view, seed=seed, check=check,
                                labels=current_labels(self.store, lens_.name), texts=texts)
            if model is None:
                reports[lens_.name] = {"trained": False,
                                       "reason": "too few links; using the unsupervised ranking"}
                continue
            loss, base = model.report.get("heldout_log_loss"), model.report.get("heldout_log_loss_fusion")
            if loss is not None and base is not None and loss > base:
                self.store.delete_model(lens_.name)
                reports[lens_.name] = {"trained": False, "reason": "the learned ranker did not beat "
                                       "the unsupervised one on held-out links; keeping that"}
                continue
            params, blob = learn.model_to_blob(model)
            self.store.put_model(lens_.name, embedder_id, lens_.signature, params, blob)
            reports[lens_.name] = {"trained": True, **model.report}
        self.store.set_meta("trained_links", str(self.link_count()))
        self.store.set_meta("trained_features", ",".join(learn.FEATURES))
        self._index = None  # loaded again, with the new rankers, when next needed
        return reports

    def label(self, lens: str | None = None, pairs: int = 50, seed: int = 0, progress=None):
        """Ask the `[label]` chat model whether the author would link up to `pairs` of a
        lens's top unlinked suggestions and store the answers, which `train` then learns
        from (label.py); returns a `label.LabelReport`."""
        from . import label as label_mod

        judge = label_mod.Judge.for_vault(self.config, self.root)  # nothing loaded or sent without one
        return label_mod.label_pairs(self.store, self.ranking(), self.config.lens(lens).name,
                                     judge, pairs, seed, progress)

    def link_count(self) -> int:
        return self.store.link_count()

    def trained_links(self, store: Store | None = None) -> int | None:
        """The links there were at the last training; None if never trained."""
        trained = (store or self.store).get_meta("trained_links")
        return int(trained) if trained else None

    # -- write-back ---------------------------------------------------------------
    @property
    def writes_here(self) -> bool:
        """Whether this machine writes blocks: `writer` in .lenslink.toml is unset or
        names this machine (a vault synced between computers needs one writer)."""
        writer = self.config.writer
        return writer is None or writer.casefold() == paths.machine_name().casefold()

    def _check_writer(self) -> None:
        if not self.writes_here:
            raise ConfigError(f"blocks of this vault are written by {self.config.writer!r} "
                              f"(writer in .lenslink.toml); this computer is "
                              f"{paths.machine_name()!r}")

    def block_groups(self, note: str) -> tuple[str, bool, list[tuple[str, list[str]]]]:
        """(path, opted out, [(lens, related paths)]): what goes into a note's block,
        each lens with its own list (a note may appear under several lenses)."""
        path = self.resolve_note(note)
        ranking = self.ranking()
        if ranking.notes[ranking.row[path]].opted_out:
            return path, True, []
        return path, False, [(lens.name, [r.path for r in self._on_disk(
            ranking.related(path, lens.name))]) for lens in ranking.config.lenses]

    def check_embedded(self, path: str, store: Store | None = None) -> None:
        """NotEmbedded when a lens's text of the note has no vector yet: its block would
        lack that lens's list. Looked up in `store` (the daemon's request threads pass
        their own connection)."""
        waiting = self._unembedded([path], store).get(path)
        if waiting:
            raise NotEmbedded(f"{path}: {self._waiting_detail(waiting)}")

    def render_block(self, note: str, check: bool = True
                     ) -> tuple[str, bool, list[tuple[str, list[str]]], str]:
        """(path, opted out, groups as `block_groups`, block text) for a note, links in the
        vault's link style; `check`: `check_embedded` first (`write` checks all its notes
        at once instead)."""
        path, opted_out, groups = self.block_groups(note)
        if check:
            self.check_embedded(path)
        style = writeback.LinkStyle.from_vault(self.root)
        names = self.ranking().name_counts()
        links = [(lens, [style.format_link(p, path, names) for p in paths]) for lens, paths in groups]
        return path, opted_out, groups, block_mod.render_block(links, heading=self.ranking().config.heading)

    def write(self, notes: list[str] | None = None, dry_run: bool = False,
              force: bool = False) -> list[WriteOutcome]:
        """Write (or diff) the managed block of the given notes, or of every note.

        A block someone edited by hand (it is neither what lenslink last wrote there nor
        in the form lenslink writes) is left alone and reported as `edited`, unless
        `force` (taking the block over)."""
        if not dry_run:
            self._check_writer()
        if notes:
            targets = [self.resolve_note(n) for n in notes]
        else:  # by `row`: an updated snapshot keeps the cards of deleted notes in `notes`
            ranking = self.ranking()
            targets = [p for p, r in ranking.row.items() if not ranking.notes[r].opted_out]
        outcomes = []
        waiting = self._unembedded(targets)
        for path in targets:
            if not notes_mod.is_note_path(path, self.config.exclude):  # excluded since the index
                outcomes.append(WriteOutcome(path, "skipped", "excluded by `exclude` in .lenslink.toml"))
                continue
            if path in waiting:  # its lists would lack those lenses: the block it has stays
                outcomes.append(WriteOutcome(path, "skipped", self._waiting_detail(waiting[path])))
                continue
            try:
                path, _, _, text = self.render_block(path, check=False)
            except LenslinkError as exc:
                outcomes.append(WriteOutcome(path, "error", str(exc).removeprefix(f"{path}: ")))
                continue
            data = self._note_bytes(path)
            if self.ranking().notes[self.ranking().row[path]].opted_out or _opts_out(path, data):
                outcomes.append(WriteOutcome(path, "skipped", "opted out (lenslink: false)" + (
                    f"; its old block stays: lenslink write {self.root} {path!r} --remove"
                    if _has_block(data) else "")))
                continue
            outcomes.append(self._write_one(path, text, dry_run, force))
        return outcomes

    def unranked_reason(self, path: str, lens: str | None = None, store: Store | None = None) -> str | None:
        """Why a note of the index has no related notes under a lens, when there is a
        reason other than that no note scored (for messages; from the store, `store` if
        given: no ranking is loaded for it)."""
        store = store or self.store
        row = store.note(path)
        chosen = self.ranked_config.lens(lens)
        if row is None:
            return None
        if row.opted_out:
            return "it opts out (lenslink: false)"
        if chosen.name in self._unembedded([path], store).get(path, []):
            return f"its text is not embedded yet ({self._embedding_failed()})"
        if not chosen.source.matches(index_mod.note_meta(row)):
            return "the lens does not apply to it (its `source` filter)"
        return None

    def below_floor(self, path: str, lens: str | None = None) -> str | None:
        """Why none, when the lens ranks notes for `path` but every one scored below its
        `min_score` (ranks the note once more)."""
        chosen, ranking = self.ranked_config.lens(lens), self.ranking()
        if chosen.min_score <= 0 or ranking.related(path, chosen.name, 1) \
                or not ranking.related(path, chosen.name, 1, min_score=0.0):
            return None
        return (f"every note scored below the lens's min_score {chosen.min_score:g} "
                "(`related --min-score 0` shows them)")

    def _waiting_detail(self, lenses: list[str]) -> str:
        return f"{NOT_EMBEDDED} {', '.join(lenses)} ({self._embedding_failed()}); its block stays as it is"

    def _embedding_failed(self) -> str:
        return (f"an index was interrupted, or a rewrite or the embedder failed: `lenslink index "
                f"{self.root}` embeds it, `lenslink status` says more")

    def _unembedded(self, paths: list[str], store: Store | None = None) -> dict[str, list[str]]:
        """{path: [lens, ...]} of these notes whose texts under an active lens of the
        ranking have no vector yet; none when the last sync left nothing missing."""
        store = store or self.store
        active, complete = index_mod.recorded_state(store, self.ranked_config)
        embedder_id = store.get_meta("embedder")
        if complete or not active or not embedder_id:
            return {}
        return store.unembedded(embedder_id, active, paths)

    def _note_bytes(self, path: str) -> bytes | None:
        """The note's bytes as on disk; None when it cannot be read (writing says why)."""
        try:
            return writeback.safe_note_path(self.root, path).read_bytes()
        except (OSError, LenslinkError):
            return None

    def remove_blocks(self, notes: list[str] | None = None, dry_run: bool = False,
                      force: bool = False) -> list[WriteOutcome]:
        """Take lenslink's block out of the given notes, or out of every note in the vault
        (indexed or not, opted out or excluded or not), with the same safety rules as `write`: a
        block edited by hand stays unless `force`. Outcome `removed` when one was."""
        if not dry_run:
            self._check_writer()
        if notes:
            targets = [self._removal_target(n) for n in notes]
        else:
            targets = list(notes_mod.scan_vault(self.root).paths)  # also notes excluded since
        outcomes = [self._write_one(path, "", dry_run, force) if _may_have_block(self._note_bytes(path))
                    else WriteOutcome(path, "unchanged", "no block") for path in targets]
        return [dataclasses.replace(o, status="removed") if o.status == "written" else o
                for o in outcomes]

    def _removal_target(self, note: str) -> str:
        """An indexed note by path or title, or else a note file of the vault by path."""
        try:
            return self.resolve_note(note)
        except (NotFound, StoreError, ConfigError):
            rel = Path(self._inside(note)).as_posix()
            if notes_mod.is_note_path(rel) and (self.root / rel).is_file():
                return rel
            raise

    def _inside(self, note: str) -> str:
        """`note` as given, or an absolute path made vault-relative (NotFound outside)."""
        candidate = Path(note)
        if not candidate.is_absolute():
            return note
        try:
            return candidate.resolve().relative_to(self.root).as_posix()
        except ValueError:
            raise NotFound(f"{note} is outside the vault {self.root}") from None

    def _write_one(self, path: str, text: str, dry_run: bool, force: bool) -> WriteOutcome:
        """Splice `text` ("": remove the block) into one note under the write rules."""
        try:
            guard = None if force else self._hand_edit_guard(path, text, remove=not text)
            intended, result = not dry_run and bool(text), None
            if intended:  # a crash after the file is replaced leaves this block there
                self.store.intend_write(path, text)
            try:
                result = writeback.write_block(self.root, path, text, dry_run=dry_run, guard=guard)
            finally:
                if intended and (result is None or result.status != "written"):
                    self.store.intend_write(path, None)  # not written after all
            if result.status == "written":
                self.store.remember_write(path, _block_hash(text), result.sha256, text or None)
            if not dry_run:  # written, unchanged or removed: a refusal listed before is over
                self.store.clear_failure(path)
            return WriteOutcome(path, result.status, result.diff)
        except ReadOnlyNote as exc:  # the owner's choice, as `lenslink: false` is
            return WriteOutcome(path, "skipped", str(exc).removeprefix(f"{path}: "))
        except BlockEdited as exc:
            if not dry_run:
                self.store.record_failure(path, str(exc))  # shown by status
            return WriteOutcome(path, "edited", str(exc))
        except LenslinkError as exc:  # the outcome names the note: its message need not
            detail = str(exc).removeprefix(f"{path}: ")
            if isinstance(exc, BlockError) and not dry_run:  # damaged markers, an open fence:
                self.store.record_failure(path, f"not written: {detail}")  # until fixed
            return WriteOutcome(path, "error", detail)

    def _hand_edit_guard(self, path: str, block: str, remove: bool = False):
        """Refuses a block that is neither the one lenslink last wrote in the note nor in
        lenslink's form with the heading, labels and number of links of one it wrote
        there or is about to write (`block`: e.g. another computer's)."""
        last, written = self.store.written_block(path)
        shapes = written + [block] if written and block else written

        def guard(current: str) -> None:
            if _block_hash(current) == last or block_mod.is_rendered(current, shapes):
                return  # ours (from here, or from another machine syncing the vault)
            raise BlockEdited(f"its related-notes block was edited by hand, so lenslink "
                              f"leaves it; to {'remove' if remove else 'replace'} it: lenslink "
                              f"write {self.root} {path!r} {'--remove ' if remove else ''}--force")
        return guard

    # -- status -------------------------------------------------------------------
    def status(self, store: Store | None = None) -> dict:
        """What the index holds and what went wrong, for `status` and the API.

        The daemon passes a second connection (`store`) so that status never waits for
        the indexing thread; the ranking part then comes from the loaded snapshot."""
        own = store is None
        store = store or self.store
        count, opted_out, problems = store.note_summary()
        embedder_id = store.get_meta("embedder")
        active, complete = index_mod.recorded_state(store, self.config)
        chunks, embedded = store.chunk_counts(embedder_id or "", active, complete)
        for path, error in store.failures().items():
            problems.setdefault(path, []).append(error)
        rewriting = [l.name for l in self.config.lenses if l.rewrite and l.name in active]
        for path, names in store.pending_rewrite_paths(rewriting).items():
            problems.setdefault(path, []).extend(
                f"lens {name}: not rewritten yet (the rewrite endpoint failed or the index "
                "was interrupted); retried on the next index" for name in names)
        indexed_at = store.get_meta("indexed_at")
        out = {"vault": str(self.root), "database": str(self.db_path), "config": self.config.source,
               "notes": count, "opted_out": opted_out,
               "links": store.link_count(), "trained_links": self.trained_links(store),
               "texts": chunks, "embedded_texts": embedded, "embedder": embedder_id,
               "indexed_at": float(indexed_at) if indexed_at else None,
               "machine": paths.machine_name(), "writer": self.config.writer,
               "lenses": [], "problems": problems}
        ranking = self.ranking() if own and count and embedder_id else self._index
        if ranking is not None:
            for lens in ranking.config.lenses:
                view = ranking.views[lens.name]
                # notes: `position`, not `rows` (an updated snapshot keeps those of notes gone)
                out["lenses"].append({"name": lens.name, "notes": len(view.position),
                                      "sources": int(view.sources.sum()),
                                      "candidates": int(view.candidates.sum()),
                                      "ranking": "learned" if view.model else "unsupervised",
                                      "scores": "probability" if view.model else view.calibrator.kind})
        return out

    def rewrites(self, note: str, lens: str | None = None) -> list[str]:
        """A note's texts as rewritten for a lens with a `rewrite` (what was embedded), in
        chunk order; [] for a lens without one. Read from the store: no request is made."""
        chosen = self.config.lens(lens)
        if not chosen.rewrite:
            return []
        return [text for text, _ in self.store.lens_chunks(self.resolve_note(note), chosen.name)
                if text]

    def lenses(self) -> list[dict]:
        return [{"name": l.name, "description": l.description, "template": l.template,
                 "prefix": l.prefix, "top_k": l.top_k, "min_score": l.min_score,
                 "source": _filter_dict(l.source), "candidates": _filter_dict(l.candidates),
                 "rewrite": {"model": l.rewrite.model, "prompt": l.rewrite.prompt,
                             "base_url": l.rewrite.base_url} if l.rewrite else None}
                for l in self.ranked_config.lenses]


def _md_path(note: str) -> str:
    """A note named by its path, with or without `.md`, as a vault-relative Markdown path."""
    note = note.replace("\\", "/")
    return note if note.lower().endswith(".md") else note + ".md"


def _opts_out(path: str, data: bytes | None) -> bool:
    """Whether a note's bytes say `lenslink: false` (set since the last index). Only a
    note whose frontmatter names lenslink is parsed (write --all reads every note)."""
    if data is None:
        return False
    body = data.removeprefix(b"\xef\xbb\xbf")
    end = body.find(b"\n---", 3) if body.startswith(b"---") else -1
    if end < 0 or b"lenslink" not in body[:end]:
        return False
    try:
        return notes_mod.parse_note(path, data).opted_out
    except LenslinkError:
        return False


def _has_block(data: bytes | None) -> bool:
    """Whether a note's bytes hold a lenslink block (damaged or not) as UTF-8 text."""
    try:
        return data is not None and block_mod.START in data.decode("utf-8")
    except UnicodeDecodeError:
        return False


def _may_have_block(data: bytes | None) -> bool:
    """False for a note whose bytes hold neither marker (not even as UTF-8: a note in
    another encoding without a block needs nothing); True when unsure (unreadable)."""
    return data is None or any(m.encode() in data for m in ("lenslink:start", "lenslink:end"))


def _block_hash(block: str) -> str:
    """Hash of a block's text with its line endings as LF (the note's may be CRLF)."""
    return hashlib.sha256(block.replace("\r\n", "\n").replace("\r", "\n").encode()).hexdigest()


def _filter_dict(f) -> dict:
    out = {k: list(v) for k, v in (("globs", f.globs), ("tags", f.tags),
                                   ("exclude_globs", f.exclude_globs),
                                   ("exclude_tags", f.exclude_tags)) if v}
    if f.frontmatter:
        out["frontmatter"] = dict(f.frontmatter)
    if f.daily is not None:
        out["daily"] = f.daily
    return out


__all__ = ["Vault", "WriteOutcome", "ConfigError"]
