"""Obsidian link syntax: code spans, wikilinks, markdown links, and link resolution.

Parsing and resolution agree with the evaluation's reference (`shared/eval/linkgraph.py`):
a wikilink whose `[[` starts inside fenced or inline code is not a link, and a link path
resolves like Obsidian's `getFirstLinkpathDest`.
"""
from __future__ import annotations

import bisect
import posixpath
import re
from typing import Iterable, NamedTuple
from urllib.parse import unquote

# Patterns start with a literal so the regex engine can skip ahead fast on 10 MB notes;
# a `!` just before the match makes an embed.
_WIKILINK = re.compile(r"\[\[(?P<inner>[^\[\]\n]+)\]\]")
_FENCE = re.compile(r"[\s>]*(?P<run>`{3,}|~{3,})")
_TICKS = re.compile(r"`+")
# [text](target "title") or [text](<target with spaces>)
_MD_LINK = re.compile(
    r"\[(?P<text>[^\[\]\n]*)\]\(\s*(?:<(?P<angled>[^<>\n]*)>|(?P<bare>[^\s()]*))"
    r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_LEADING_DOTS = re.compile(r"^(?:\.\.?/)+")


class Link(NamedTuple):
    """One link as written: `path` may be '' (`[[#Heading]]`), `embed` for `![[...]]`."""
    start: int
    end: int
    embed: bool
    path: str
    subpath: str
    alias: str
    markdown: bool = False

    @property
    def visible(self) -> str:
        """What Obsidian displays for the link: alias, else note name, else heading."""
        if self.alias:
            return self.alias
        if self.path:
            name = self.path.rstrip("/").rsplit("/", 1)[-1]
            return name[:-3] if name.lower().endswith(".md") else name
        return self.subpath.lstrip("^")


class CodeSpans:
    """Character ranges of fenced code blocks and inline code spans in a text."""

    def __init__(self, text: str = "", spans: list[tuple[int, int]] | None = None):
        self.spans = _code_spans(text) if spans is None else spans
        self._starts = [s for s, _ in self.spans]

    def shifted(self, offset: int) -> CodeSpans:
        """The spans of `text[offset:]`, given that `offset` starts a line."""
        return CodeSpans(spans=[(max(s - offset, 0), e - offset)
                                for s, e in self.spans if e > offset])

    def __contains__(self, pos: int) -> bool:
        i = bisect.bisect_right(self._starts, pos) - 1
        return i >= 0 and pos < self.spans[i][1]

    def merged(self, extra: Iterable[tuple[int, int]]) -> CodeSpans:
        """These spans plus `extra` ones (say, comments), overlaps joined."""
        out: list[tuple[int, int]] = []
        for start, end in sorted([*self.spans, *extra]):
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        return CodeSpans(spans=out)


def _code_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    fence = ""  # the opening run while inside a fenced block
    fence_start = 0
    for line in text.splitlines(keepends=True):
        # most lines hold no backtick or tilde: skip the regex for them (10 MB notes)
        if not fence and ("`" in line or "~" in line):
            m = _FENCE.match(line)
            # ```x``` on one line is inline code, not a fence
            if m and not (m["run"][0] == "`" and "`" in line[m.end():]):
                fence, fence_start = m["run"], pos
            elif "`" in line:
                spans.extend((pos + s, pos + e) for s, e in _inline_code(line))
        elif fence and fence[0] in line:
            m = _FENCE.match(line)
            if (m and m["run"][0] == fence[0] and len(m["run"]) >= len(fence)
                    and not line[m.end():].strip()):
                spans.append((fence_start, pos + len(line)))
                fence = ""
        pos += len(line)
    if fence:
        spans.append((fence_start, pos))
    return spans


def _inline_code(line: str) -> list[tuple[int, int]]:
    """Inline code spans of one line: a backtick run up to the next run of the same length.

    An opener without a closer costs one pass over the later runs; there are at most as
    many such openers as distinct run lengths, so long lines stay cheap.
    """
    runs = [m.span() for m in _TICKS.finditer(line)]
    spans, i, n = [], 0, len(runs)
    while i < n - 1:
        start, end = runs[i]
        for j in range(i + 1, n):
            if runs[j][1] - runs[j][0] == end - start:
                spans.append((start, runs[j][1]))
                i = j + 1
                break
        else:
            i += 1
    return spans


def _embed(text: str, start: int) -> bool:
    return start > 0 and text[start - 1] == "!"


def wikilinks(text: str, code: CodeSpans | None = None) -> list[Link]:
    """Wikilinks and embeds whose `[[` is outside code, in order."""
    code = code if code is not None else CodeSpans(text)
    out = []
    for m in _WIKILINK.finditer(text):
        start = m.start() - _embed(text, m.start())
        if start in code:
            continue
        target, _, alias = m["inner"].partition("|")
        target = target.rstrip("\\")  # [[Note\|alias]] written inside a table
        path, _, sub = target.partition("#")
        out.append(Link(start, m.end(), start < m.start(), path.strip(), sub.strip(),
                        alias.strip()))
    return out


def markdown_links(text: str, code: CodeSpans | None = None) -> list[Link]:
    """Markdown links `[text](target)` outside code; `path` is URL-decoded, '' for URLs."""
    code = code if code is not None else CodeSpans(text)
    out = []
    for m in _MD_LINK.finditer(text):
        start = m.start() - _embed(text, m.start())
        if start in code:
            continue
        target = m["angled"] if m["angled"] is not None else m["bare"]
        path, _, sub = target.partition("#")
        if _URL_SCHEME.match(path):
            path = ""  # a URL, not a note
        if "%" in target:
            path, sub = unquote(path), unquote(sub)
        out.append(Link(start, m.end(), start < m.start(), path.strip(), sub.strip(),
                        m["text"].strip(), markdown=True))
    return out


def parse_links(text: str, code: CodeSpans | None = None) -> list[Link]:
    """Wikilinks, embeds and markdown links outside code, in order of appearance."""
    code = code if code is not None else CodeSpans(text)
    return sorted(wikilinks(text, code) + markdown_links(text, code))


def link_targets(links: Iterable[Link], body_start: int = 0) -> list[str]:
    """Raw target paths of the links that count, in order.

    Non-embed wikilinks count anywhere (frontmatter included, as Obsidian >= 1.4 does);
    markdown links count from `body_start` on, and only when they point at a `.md` file.
    """
    return [l.path for l in links if not l.embed and (
        not l.markdown or (l.start >= body_start and l.path.lower().endswith(".md")))]


def plain_text(text: str, links: Iterable[Link], offset: int = 0,
               drop: Iterable[tuple[int, int]] = ()) -> str:
    """`text` with `links` (found at `start - offset`) reduced to their visible text,
    embeds and images and the `drop` ranges removed. Links are found outside code, so
    code stays as written."""
    edits = [(l.start - offset, l.end - offset, "" if l.embed else
              l.alias if l.markdown else l.visible) for l in links]
    edits += [(start, end, "") for start, end in drop]
    out, pos = [], 0
    for start, end, replacement in sorted(edits, key=lambda e: e[0]):
        if start < pos:
            continue  # before the text, or inside an edit already made
        out += (text[pos:start], replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


class Resolver:
    """Resolve link paths to vault notes the way Obsidian's getFirstLinkpathDest does."""

    def __init__(self, paths: Iterable[str]):
        self._exact: dict[str, str] = {}
        self._by_name: dict[str, list[str]] = {}
        for path in paths:
            key = _strip_md(path.lower())
            self._exact.setdefault(key, path)
            self._by_name.setdefault(key.rsplit("/", 1)[-1], []).append(path)

    def resolve(self, link: str, source: str) -> str | None:
        """Vault path of the note `link` (a link path, no `#`/`|`) names from `source`.

        Tries the exact vault path, then the path relative to the source's folder, then
        notes whose path ends with the link path: the source's own folder first, then the
        shortest path. Case-insensitive, `.md` optional; '' (a `[[#Heading]]`) is `source`.
        """
        if not link:
            return source
        want = _strip_md(link.replace("\\", "/").strip("/").lower())
        folder = posixpath.dirname(source).lower()
        hit = self._exact.get(want) or self._exact.get(
            posixpath.normpath(posixpath.join(folder, want)))
        if hit:
            return hit
        matches = self._ending_with(_LEADING_DOTS.sub("", want))
        if not matches:
            return None
        local = [p for p in matches if posixpath.dirname(p).lower() == folder]
        return min(local or matches, key=lambda p: (len(p), p))

    def named(self, link: str) -> list[str]:
        """Every note `link` may name from the vault root: the note whose path it is, else
        every note whose path ends with it (`resolve` picks the shortest of those). More
        than one is an ambiguous title."""
        want = _strip_md(link.replace("\\", "/").strip("/").lower())
        hit = self._exact.get(want) or self._exact.get(posixpath.normpath(want))
        return [hit] if hit else sorted(self._ending_with(_LEADING_DOTS.sub("", want)))

    def _ending_with(self, want: str) -> list[str]:
        name = want.rsplit("/", 1)[-1]
        return [p for p in self._by_name.get(name, ())
                if _strip_md(p.lower()) == want or _strip_md(p.lower()).endswith("/" + want)]


def may_resolve_to(link: str, names: set[str]) -> bool:
    """Whether `link` (a raw link path) could resolve differently when notes whose
    `note_name` is in `names` are added or removed: every way `Resolver.resolve` matches
    ends on the same last path component (a link ending in `.` or `..` always may)."""
    want = _strip_md(link.replace("\\", "/").strip("/").lower())
    ends = {posixpath.normpath(want or ".").rsplit("/", 1)[-1],
            _LEADING_DOTS.sub("", want).rsplit("/", 1)[-1]}
    return bool(ends & names) or bool(ends & {".", ".."})


def link_names(link: str, source: str) -> set[str]:
    """The `note_name` of every note `Resolver.resolve(link, source)` could return: a
    Resolver over only the notes of these names resolves the link the same way."""
    if not link:
        return set()  # the source itself
    want = _strip_md(link.replace("\\", "/").strip("/").lower())
    relative = posixpath.normpath(posixpath.join(posixpath.dirname(source).lower(), want))
    return {want.rsplit("/", 1)[-1], relative.rsplit("/", 1)[-1],
            _LEADING_DOTS.sub("", want).rsplit("/", 1)[-1]}


def note_name(path: str) -> str:
    """The last path component links are matched on (lower case, no `.md`)."""
    return _strip_md(path.lower()).rsplit("/", 1)[-1]


def _strip_md(path: str) -> str:
    return path[:-3] if path.endswith(".md") else path
