"""Boilerplate: lines that repeat verbatim across many notes (templates, Dataview
queries, daily-note scaffolding such as `## Tasks`) say nothing about what a note is
about, so they are left out of what is embedded and compared.

Templates belong to kinds of notes, and kinds of notes live in folders (`daily/`,
`meetings/`, `people/`): a line is boilerplate in a folder when it is found in at least
`MIN_NOTES` of the folder's notes and in at least `MIN_SHARE` of them. (A vault-wide
count would also drop lines such as "```rust" that a few dozen notes share because of
what they are about.) Each note's distinct lines are kept as 64-bit keys (normalised:
lower case, single spaces). The sets are recomputed on full syncs only, so that one edit
never changes other notes' texts. Lexical signals keep every line; only what is
embedded leaves boilerplate out.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Iterable

import numpy as np

MIN_NOTES = 5      # a line in this many notes of a folder ...
MIN_SHARE = 0.2    # ... and in this share of them is boilerplate there
MIN_CHARS = 3      # shorter lines ("-", "---") are left alone: they carry no words anyway


def line_key(line: str) -> int | None:
    """The key of a line, or None for a line too short to count."""
    normal = " ".join(line.lower().split())
    if len(normal) < MIN_CHARS:
        return None
    return int.from_bytes(hashlib.blake2b(normal.encode("utf-8"), digest_size=8).digest(),
                          "little", signed=True)


def note_keys(text: str) -> np.ndarray:
    """The sorted distinct line keys of a text (int64)."""
    keys = {k for k in map(line_key, text.splitlines()) if k is not None}
    return np.array(sorted(keys), dtype=np.int64)


def strip(text: str, boilerplate: frozenset[int]) -> str:
    """The text without its boilerplate lines (other lines exactly as they were)."""
    if not boilerplate:
        return text
    return "".join(line for line in text.splitlines(keepends=True)
                   if line_key(line) not in boilerplate)


Boilerplate = dict[str, frozenset[int]]  # folder -> boilerplate line keys there


def frequent(per_note: Iterable[tuple[str, np.ndarray]], min_notes: int | None = None,
             min_share: float | None = None) -> Boilerplate:
    """{folder: keys} of the lines found in at least `min_notes` (default MIN_NOTES) and
    `min_share` (default MIN_SHARE) of the folder's notes, from (note path, keys) pairs."""
    min_notes = MIN_NOTES if min_notes is None else min_notes
    min_share = MIN_SHARE if min_share is None else min_share
    by_folder: dict[str, list[np.ndarray]] = {}
    for path, keys in per_note:
        by_folder.setdefault(posixpath.dirname(path), []).append(keys)
    out: Boilerplate = {}
    for folder, arrays in by_folder.items():
        need = max(min_notes, min_share * len(arrays))
        if len(arrays) < need:
            continue
        keys, counts = np.unique(np.concatenate(arrays), return_counts=True)
        common = frozenset(keys[counts >= need].tolist())
        if common:
            out[folder] = common
    return out


def dumps(boilerplate: Boilerplate) -> str:
    return json.dumps({f: sorted(k) for f, k in sorted(boilerplate.items())})


def loads(value: str | None) -> Boilerplate:
    try:
        data = json.loads(value or "{}")
    except ValueError:
        return {}
    return {str(f): frozenset(int(k) for k in keys) for f, keys in data.items()} \
        if isinstance(data, dict) else {}


def flipped(old: Boilerplate, new: Boilerplate) -> dict[str, np.ndarray]:
    """{folder: keys} whose boilerplate status differs between `old` and `new`."""
    out = {}
    for folder in set(old) | set(new):
        diff = old.get(folder, frozenset()) ^ new.get(folder, frozenset())
        if diff:
            out[folder] = np.array(sorted(diff), dtype=np.int64)
    return out


def to_blob(keys: np.ndarray) -> bytes:
    return np.ascontiguousarray(keys, dtype="<i8").tobytes()


def from_blob(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(blob or b"", dtype="<i8")
