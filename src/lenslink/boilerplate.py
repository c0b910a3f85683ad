"""Boilerplate: lines that repeat verbatim across many notes (templates, Dataview
queries, daily-note scaffolding such as `## Tasks`) say nothing about what a note is
about, so they are left out of what is embedded and compared.

Each note's distinct lines are kept as 64-bit keys (normalised: lower case, single
spaces); a line found in at least `MIN_NOTES` notes is boilerplate. The set is
recomputed on full syncs only, so that one edit never changes other notes' texts.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

MIN_NOTES = 5      # a line in this many notes is boilerplate (a template's, usually)
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


def frequent(per_note: Iterable[np.ndarray], min_notes: int | None = None) -> frozenset[int]:
    """Keys found in at least `min_notes` (default MIN_NOTES) of the notes' key arrays."""
    min_notes = MIN_NOTES if min_notes is None else min_notes
    arrays = [a for a in per_note if len(a)]
    if not arrays:
        return frozenset()
    keys, counts = np.unique(np.concatenate(arrays), return_counts=True)
    return frozenset(keys[counts >= min_notes].tolist())


def to_blob(keys: np.ndarray) -> bytes:
    return np.ascontiguousarray(keys, dtype="<i8").tobytes()


def from_blob(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(blob or b"", dtype="<i8")
