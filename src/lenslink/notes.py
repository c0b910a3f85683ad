"""Reading an Obsidian vault: which files are notes, and what one note says.

`scan_vault` lists the notes, `read_note` reads and parses one into a `Note`; links are
parsed and resolved in `links.py` (re-exported here: `Resolver`, `resolve_links`).
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

import yaml
from frontmatter.default_handlers import YAMLHandler

from .block import END, START, find_block, remove_block
from .errors import BlockError, NoteError, UnsafePathError
from .links import CodeSpans, Resolver, link_targets, parse_links, plain_text

__all__ = ["Note", "Resolver", "ScanResult", "is_note_path", "parse_note", "read_note",
           "resolve_links", "scan_paths", "scan_vault"]

MAX_BYTES = 20_000_000
BINARY_PROBE = 8192
_FM_OPEN = re.compile(r"---[ \t]*\r?$", re.M)
_FM_CLOSE = re.compile(r"^---[ \t]*\r?$", re.M)
_COMMENT_OPEN = re.compile(r"%%|<!--")
_INLINE_TAG = re.compile(r"(?<!\S)#([\w/-]+)")
_DAILY = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ _-]?[A-Za-z]{3,9})?")
_OPT_OUT = {"false", "no", "off"}


@dataclass(frozen=True)
class Note:
    """One parsed note.

    `title` is the file name without `.md`, `folder` '' at the vault root, `raw` the decoded
    text as read; `body` follows the frontmatter, our managed block removed; `clean_text`
    is the body as a reader sees it (links -> their visible text; embeds, images and
    comments dropped; code kept). `links` are raw link paths in order (wikilinks outside
    code, frontmatter included; markdown links to `.md` files); resolve them with
    `resolve_links`. `tags` are lower-case without `#`; `problems` say what was odd.
    """
    path: str
    title: str
    folder: str
    raw: str
    frontmatter: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    body: str = ""
    clean_text: str = ""
    links: tuple[str, ...] = ()
    content_hash: str = ""
    mtime_ns: int = 0
    size: int = 0
    problems: tuple[str, ...] = ()
    opted_out: bool = False
    is_daily: bool = False

    @property
    def mtime(self) -> float:
        """Modification time in seconds (`mtime_ns` is exact)."""
        return self.mtime_ns / 1e9


# ---------------------------------------------------------------- scanning

class ScanResult(NamedTuple):
    """What `scan_vault` found: sorted note paths, (path, message) for what it skipped,
    and the hidden files whose names end with the asked-for suffix."""
    paths: tuple[str, ...]
    problems: tuple[tuple[str, str], ...]
    hidden: tuple[str, ...] = ()


def scan_vault(root: Path, exclude: Sequence[str] = (), hidden_suffix: str = "") -> ScanResult:
    """The notes (`*.md`, any case) under `root` as sorted vault-relative POSIX paths.

    Skipped: hidden paths (`.obsidian/`, `.trash/`, ...), paths matching an `exclude`
    glob (gitignore-ish, case-insensitive: `**` spans folders, a pattern without `/`
    matches a file or folder name at any depth), symlinks leaving the vault or broken,
    and symlinked folders (Obsidian ignores in-vault ones; their notes are listed under
    the real path, which also rules out loops). Unreadable folders and skipped symlinks
    are reported in `problems`, never raised; only a missing `root` raises `NoteError`.
    Hidden files ending with `hidden_suffix` in the folders scanned are listed in
    `hidden` (the sync finds lenslink's stale temp files in the same walk).
    """
    top, real_top, rules = _scan_start(root, exclude)
    found: list[str] = []
    hidden: list[str] = []
    problems: list[tuple[str, str]] = []
    stack = [("", top)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = list(it)
        except OSError as e:
            problems.append((rel_dir or ".", f"folder skipped: {e.strerror or e}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                if hidden_suffix and entry.name.endswith(hidden_suffix):
                    hidden.append(f"{rel_dir}/{entry.name}" if rel_dir else entry.name)
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if not _valid_name(entry.name):
                if entry.is_dir(follow_symlinks=False) or entry.name.lower().endswith(".md"):
                    shown = entry.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    problems.append((rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                                     f"skipped: the name {shown!r} is not valid UTF-8; rename it"))
                continue
            try:
                if entry.is_symlink():
                    is_dir = os.path.isdir(entry.path)
                    if _excluded(rel, rules, is_dir) or not (
                            is_dir or entry.name.lower().endswith(".md")):
                        continue  # not something that could hold notes: not worth a word
                    skipped = _symlink_problem(entry.path, real_top)
                    if skipped:
                        problems.append((rel, skipped))
                    elif not is_dir:
                        found.append(rel)
                elif entry.is_dir(follow_symlinks=False):
                    if not _excluded(rel, rules, True):
                        stack.append((rel, entry.path))
                elif entry.name.lower().endswith(".md") and not _excluded(rel, rules, False):
                    found.append(rel)
            except OSError as e:
                problems.append((rel, f"skipped: {e.strerror or e}"))
    return ScanResult(tuple(sorted(found)), tuple(problems), tuple(sorted(hidden)))


def scan_paths(root: Path, paths: Iterable[str], exclude: Sequence[str] = ()) -> ScanResult:
    """What `scan_vault` would find among `paths` (vault-relative), without walking the
    vault: a sync of the few notes a watcher reported. A path that is gone, or that the
    walk would not list (hidden, excluded, under a symlinked folder, not a note), is not
    found; skipped symlinks and unreadable paths are reported as the walk reports them."""
    top, real_top, rules = _scan_start(root, exclude)
    found: list[str] = []
    problems: list[tuple[str, str]] = []
    for rel in sorted(set(paths)):
        parts = rel.split("/")
        if any(not p or p.startswith(".") or not _valid_name(p) for p in parts) \
                or not parts[-1].lower().endswith(".md") or _excluded(rel, rules, False):
            continue
        try:
            if not _walked_to(top, parts[:-1], rules):
                continue
            path = os.path.join(top, *parts)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                if os.path.isdir(path):
                    continue
                skipped = _symlink_problem(path, real_top)
                if skipped:
                    problems.append((rel, skipped))
                    continue
            elif stat.S_ISDIR(info.st_mode):
                continue
            found.append(rel)
        except FileNotFoundError:
            continue
        except OSError as e:
            problems.append((rel, f"skipped: {e.strerror or e}"))
    return ScanResult(tuple(found), tuple(problems))


def _scan_start(root: Path, exclude: Sequence[str]) -> tuple[str, str, list["_ExcludeRule"]]:
    """(root, its real path, exclude rules); NoteError when the vault folder is missing."""
    top = os.fspath(root)
    if not os.path.isdir(top):
        raise NoteError(f"{top}: vault folder not found")
    return top, os.path.realpath(top), [_ExcludeRule(p) for p in exclude if p.strip()]


def _walked_to(top: str, folders: Sequence[str], rules: Sequence["_ExcludeRule"]) -> bool:
    """Whether `scan_vault` descends into top/folders... (real folders, none excluded)."""
    path = top
    for depth, name in enumerate(folders, 1):
        path = os.path.join(path, name)
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or _excluded("/".join(folders[:depth]), rules, True):
            return False
    return True


def _valid_name(name: str) -> bool:
    """Whether a file name decoded cleanly (undecodable bytes become lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _symlink_problem(path: str, real_top: str) -> str | None:
    """Why a symlink is skipped, or None for one to a file inside the vault."""
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return "broken or looping symlink skipped"
    if not _inside(target, real_top):
        return f"symlink to {target}, outside the vault, skipped"
    return None


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


class _ExcludeRule:
    """A gitignore-ish glob: anchored when it has an inner `/`, else matches names."""

    def __init__(self, pattern: str):
        p = pattern.strip().lower()
        self.dirs_only = p.endswith("/")
        self.anchored = "/" in p.rstrip("/")
        self.regex = re.compile(_glob_to_regex(p.strip("/")))

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dirs_only and not is_dir:
            return False
        subject = rel.lower() if self.anchored else rel.rsplit("/", 1)[-1].lower()
        return bool(self.regex.fullmatch(subject)
                    or (is_dir and self.anchored and self.regex.fullmatch(subject + "/")))


def _glob_to_regex(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 2:]:
            end = glob.index("]", i + 2)
            chars = glob[i + 1:end].replace("\\", "\\\\")
            out.append("[" + ("^" + chars[1:] if chars[0] == "!" else chars) + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def _excluded(rel: str, rules: Sequence[_ExcludeRule], is_dir: bool) -> bool:
    return any(rule.matches(rel, is_dir) for rule in rules)


# ---------------------------------------------------------------- reading

def read_note(root: Path, rel: str, max_bytes: int = MAX_BYTES) -> Note:
    """Read and parse the note at vault-relative `rel`.

    Raises `NoteError` when the file vanished, cannot be read, looks binary (a NUL byte
    in the first 8 KB) or is larger than `max_bytes`; `UnsafePathError` when `rel`
    leaves the vault. Fixable oddities (invalid UTF-8, broken YAML) become `problems`.
    """
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or not rel:
        raise UnsafePathError(f"{rel!r}: not a path inside the vault")
    path = os.path.join(os.fspath(root), *parts)
    if not _inside(os.path.realpath(path), os.path.realpath(root)):
        raise UnsafePathError(f"{rel}: links to a file outside the vault; refused")
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size > max_bytes:
                raise NoteError(f"{rel}: {st.st_size} bytes is above the limit of "
                                f"{max_bytes} bytes (max_bytes); skipped")
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise NoteError(f"{rel}: the note vanished before it could be read") from None
    except PermissionError:
        raise NoteError(f"{rel}: permission denied; check the file's permissions") from None
    except OSError as e:
        raise NoteError(f"{rel}: cannot read ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise NoteError(f"{rel}: larger than the limit of {max_bytes} bytes (max_bytes); skipped")
    if b"\x00" in data[:BINARY_PROBE]:
        raise NoteError(f"{rel}: looks binary (NUL byte in the first 8 KB), not a Markdown note")
    return parse_note(rel, data, mtime_ns=st.st_mtime_ns)


def parse_note(rel: str, data: bytes, mtime_ns: int = 0) -> Note:
    """Parse a note's bytes (as read from `rel`) into a `Note`; never raises on content."""
    problems: list[str] = []
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raw = data.decode("utf-8", errors="replace")
        problems.append(f"not valid UTF-8 (first bad byte at offset {e.start}); "
                        "invalid bytes shown as U+FFFD")
    text = _remove_block(raw[1:] if raw.startswith("\ufeff") else raw, problems)
    frontmatter, body_start = _split_frontmatter(text, problems)
    body = text[body_start:]
    keys = {str(k).lower(): v for k, v in frontmatter.items()}
    name = posixpath.basename(rel)
    title = name[:-3] if name.lower().endswith(".md") else name
    code = CodeSpans(text)  # links are found in the whole text, as Obsidian does
    found = parse_links(text, code)
    body_code = code.shifted(body_start)
    comments = _comment_spans(body, body_code)
    hidden = body_code.merged(comments)  # where a `#word` is no tag
    fm_tags = _words(keys.get("tags")) + _words(keys.get("tag"))
    inline_tags = [m[1] for m in _INLINE_TAG.finditer(body) if m.start() not in hidden]
    return Note(
        path=rel, title=title, folder=posixpath.dirname(rel), raw=raw,
        frontmatter=frontmatter,
        aliases=tuple(dict.fromkeys(_strings(keys.get("aliases")) + _strings(keys.get("alias")))),
        tags=_normal_tags(fm_tags + inline_tags),
        body=body, clean_text=plain_text(body, found, body_start, drop=comments),
        links=tuple(link_targets(found, body_start)),
        content_hash=hashlib.sha256(data).hexdigest(), mtime_ns=mtime_ns, size=len(data),
        problems=tuple(problems), opted_out=_is_opt_out(keys.get("lenslink")),
        is_daily=_DAILY.fullmatch(title) is not None,
    )


def resolve_links(note: Note, resolver: Resolver) -> list[str]:
    """Distinct vault paths `note` links to, in order; unresolved links and self-links
    (`[[#Heading]]`) left out."""
    out: dict[str, None] = {}
    for link in note.links:
        target = resolver.resolve(link, note.path)
        if target is not None and target != note.path:
            out.setdefault(target)
    return list(out)


def _remove_block(text: str, problems: list[str]) -> str:
    """Drop our managed block; a damaged one stays (and is reported) rather than guessed at."""
    if START not in text and END not in text:
        return text
    out = remove_block(text)
    if out is text:
        try:
            find_block(text)
        except BlockError as e:
            problems.append(f"managed block left in place: {e}")
    return out


def _split_frontmatter(text: str, problems: list[str]) -> tuple[dict[str, Any], int]:
    """(frontmatter, offset where the body starts). Obsidian's rule: `---` on the first
    line and a closing `---` line; otherwise the whole text is body."""
    opening = _FM_OPEN.match(text)
    closing = _FM_CLOSE.search(text, opening.end()) if opening else None
    if closing is None:
        return {}, 0
    body_start = closing.end() + (text[closing.end():closing.end() + 1] == "\n")
    source = text[opening.end():closing.start()]
    try:
        data = YAMLHandler().load(source)
    except yaml.YAMLError as e:
        problems.append(f"broken frontmatter: {_yaml_message(e)}")
        return _salvaged(source), body_start
    if data is None:
        return {}, body_start
    if not isinstance(data, dict):
        problems.append(f"frontmatter is not a mapping (a {type(data).__name__}); ignored")
        return _salvaged(source), body_start
    return {str(k): v for k, v in data.items()}, body_start


_OPT_OUT_LINE = re.compile(r"^lenslink[ \t]*:[ \t]*([^#\r\n]*?)[ \t]*(?:#.*)?$", re.I | re.M)


def _salvaged(source: str) -> dict[str, Any]:
    """What is kept of frontmatter YAML cannot read: a `lenslink: false` line (a note that
    opted out stays out while its frontmatter is broken)."""
    found = _OPT_OUT_LINE.search(source)
    if found is None:
        return {}
    return {"lenslink": False} if _is_opt_out(found[1].strip("'\"")) else {}


def _yaml_message(e: yaml.YAMLError) -> str:
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    # +2: the mark counts from 0 inside the YAML, which starts on the file's line 2
    return f"{problem} (line {mark.line + 2})" if mark is not None else problem


def _comment_spans(text: str, code: CodeSpans) -> list[tuple[int, int]]:
    """Ranges of `%% ... %%` and `<!-- ... -->` comments that start outside code."""
    spans: list[tuple[int, int]] = []
    unclosed: set[str] = set()  # no closer after some point means none later either
    pos = 0
    while (m := _COMMENT_OPEN.search(text, pos)) is not None:
        closer = "%%" if m[0] == "%%" else "-->"
        if m.start() in code or closer in unclosed:
            pos = m.start() + 1
            continue
        end = text.find(closer, m.end())
        if end < 0:
            unclosed.add(closer)
            pos = m.start() + 1
            continue
        spans.append((m.start(), end + len(closer)))
        pos = end + len(closer)
    return spans


def _strings(value: Any) -> list[str]:
    """A frontmatter value as a list of non-empty strings (a string is one item)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


def _words(value: Any) -> list[str]:
    """Frontmatter tags: a list, or a string separated by commas and/or spaces."""
    if isinstance(value, str):
        return [w for w in re.split(r"[,\s]+", value) if w]
    return _strings(value)


def _normal_tags(tags: list[str]) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for tag in tags:
        tag = tag.lstrip("#").rstrip("/").lower()
        if tag and not all(c.isdigit() or c in "/-_" for c in tag):  # `#2024` is no tag
            out.setdefault(tag)
    return tuple(out)


def _is_opt_out(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() in _OPT_OUT)


def is_note_path(rel: str, exclude: Sequence[str] = ()) -> bool:
    """Whether a vault-relative path would be listed by `scan_vault` (for file events):
    Markdown, no hidden component, no excluded file or folder on the way."""
    parts = rel.split("/")
    if not rel.lower().endswith(".md") or any(p.startswith(".") or not p for p in parts):
        return False
    rules = [_ExcludeRule(p) for p in exclude if p.strip()]
    folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
    return not (_excluded(rel, rules, False) or any(_excluded(f, rules, True) for f in folders))
