"""The managed "Related notes" block: find it, render it, splice it into a note's text.

The block is every line from a START marker line through an END marker line. A marker
counts only alone on its line (spaces/tabs around it allowed) and outside fenced code
(``` or ~~~, also inside blockquotes). Lines end with CRLF, LF or a lone CR, as in
CodeMirror. Every function here keeps the user's characters outside the block as they
were; block lines use the note's dominant line ending (LF on a tie or when there is none).

Separator rule (what makes append-then-remove byte-identical):
- appending to an empty note (or a lone BOM) adds just the block, ending with a newline;
- appending to a note that ends with a line ending adds that same ending once (one blank
  line) and then the block, ending with a newline;
- appending to a note without a final line ending adds two line endings (end the last
  line, one blank line) and then the block *without* a final newline, mirroring the note.
Removing a block that is the last thing in the text therefore also removes one blank
line before it when the END line has a line ending, or two line endings when it has not.
A block anywhere else is removed alone (START line through END line and its ending).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote

from lenslink.errors import BlockError

START = "%% lenslink:start %%"
END = "%% lenslink:end %%"

BOM = "\ufeff"
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")
_ENDING = re.compile(r"\r\n|\n|\r")
_FENCE = re.compile(r"(`{3,}|~{3,})(.*)")
_QUOTE = re.compile(r"[ \t]*(?:>[ \t]*)*")


@dataclass(frozen=True)
class Block:
    """Character span of the managed block: START line start to END line end (with its ending)."""

    start: int
    end: int


def split_lines(text: str) -> list[str]:
    """Lines with their endings, splitting only on CRLF, LF and lone CR."""
    return _LINE.findall(text)


def _ending_of(line: str) -> str:
    return line[len(line.rstrip("\r\n")):]


def _trailing_ending_len(text: str) -> int:
    if text.endswith("\r\n"):
        return 2
    return 1 if text.endswith(("\n", "\r")) else 0


def _dominant_ending(text: str) -> str:
    """The most frequent line ending; LF when there is none or on a tie with LF."""
    counts = {"\n": 0, "\r\n": 0, "\r": 0}
    for match in _ENDING.finditer(text):
        counts[match.group()] += 1
    return max(counts, key=lambda ending: counts[ending])  # dict order breaks ties: LF first


def _scan(text: str) -> tuple[list[tuple[str, int, int]], bool]:
    """Markers as (marker, start, end) offsets, and whether the text ends inside a fence.

    Fences are recognised generously (any indent, any blockquote depth) because treating
    a code line as ours could overwrite a user's example, while missing a block of ours
    costs at most a visible duplicate.
    """
    lines = split_lines(text)
    markers: list[tuple[str, int, int]] = []
    fence: str | None = None
    offset = 0
    for index, line in enumerate(lines):
        start, offset = offset, offset + len(line)
        content = line.rstrip("\r\n")
        if index == 0:
            content = content.lstrip(BOM)
            start += len(line) - len(line.lstrip(BOM))
        unquoted = content[_QUOTE.match(content).end():]
        if fence is not None:
            closing = unquoted.rstrip(" \t")
            if len(closing) >= len(fence) and closing == fence[0] * len(closing):
                fence = None
            continue
        found = _FENCE.match(unquoted)
        if found and not (found.group(1)[0] == "`" and "`" in found.group(2)):
            fence = found.group(1)
            continue
        if content.strip(" \t") in (START, END):
            markers.append((content.strip(" \t"), start, offset))
    return markers, fence is not None


def find_block(text: str) -> Block | None:
    """The span of the one managed block, None when there is none.

    Raises BlockError when markers are damaged or ambiguous, so nothing is written over.
    """
    markers, _ = _scan(text)
    fix = f"; fix the markers by hand: {START} before the block, {END} after it"

    def line_of(offset: int) -> int:
        return len(split_lines(text[:offset])) + 1

    blocks: list[Block] = []
    open_at: int | None = None
    for marker, start, end in markers:
        if marker == START:
            if open_at is not None:
                raise BlockError(
                    f"start marker without end (line {line_of(open_at)}; "
                    f"another start marker at line {line_of(start)}){fix}"
                )
            open_at = start
        elif open_at is None:
            raise BlockError(f"end marker without start (line {line_of(start)}){fix}")
        else:
            blocks.append(Block(open_at, end))
            open_at = None
    if open_at is not None:
        raise BlockError(f"start marker without end (line {line_of(open_at)}){fix}")
    if len(blocks) > 1:
        lines = ", ".join(str(line_of(b.start)) for b in blocks)
        raise BlockError(f"two lenslink blocks (starting at lines {lines}); remove one by hand")
    return blocks[0] if blocks else None


def _removal_span(text: str, block: Block) -> tuple[int, int]:
    """The block plus the separator appending added, if the block ends the text."""
    start = block.start
    if block.end == len(text):
        before = text[:start]
        first = _trailing_ending_len(before)
        second = _trailing_ending_len(before[: len(before) - first]) if first else 0
        if first and second:
            has_final_ending = _trailing_ending_len(text[block.start : block.end]) > 0
            start -= first if has_final_ending else first + second
    return start, block.end


def remove_block(text: str) -> str:
    """The text without our block (see the separator rule); unchanged when the block is damaged.

    Never raises: meant for cleaning text before embedding. Writing uses `splice(text, "")`,
    which raises BlockError on damaged blocks instead.
    """
    try:
        block = find_block(text)
    except BlockError:
        return text
    if block is None:
        return text
    start, end = _removal_span(text, block)
    return text[:start] + text[end:]


strip_block_lenient = remove_block  # the name some callers know it by


def _one_line(value: str) -> str:
    return " ".join(value.splitlines()).strip()


def render_block(
    groups: list[tuple[str, list[str]]],
    heading: str = "Related notes",
    newline: str = "\n",
    show_lens_names: bool = True,
) -> str:
    """The block text for (lens name, formatted links) groups; "" when every group is empty.

    Layout: START, `## {heading}`, per non-empty group an italic `*{lens}*` label line and
    one `- {link}` line per link, END; each line ends with `newline`. Without lens names the
    links are listed once each, in order. An empty result means "remove our block".
    """
    body: list[str] = []
    seen: set[str] = set()
    for name, raw_links in groups:
        links = [link for link in map(_one_line, raw_links) if link]
        if not show_lens_names:
            links = [link for link in dict.fromkeys(links) if link not in seen]
            seen.update(links)
        if not links:
            continue
        label = _one_line(name).replace("*", r"\*")
        if show_lens_names and label:
            body.append(f"*{label}*")
        body.extend(f"- {link}" for link in links)
    if not body:
        return ""
    title = _one_line(heading)
    lines = [START, *([f"## {title}"] if title else []), *body, END]
    return "".join(line + newline for line in lines)


# the links `LinkStyle.format_link` writes: `[[path]]` (no alias, heading or block part)
# or `[title](encoded path)` (brackets in the title escaped)
_WIKI_ITEM = re.compile(r"- \[\[[^\[\]|#^\n]+\]\]")
_MARKDOWN_ITEM = re.compile(r"- \[((?:[^\[\]\\\n]|\\.)*)\]\(([^\s()<>]+)\)")


def _is_link_item(line: str) -> bool:
    if _WIKI_ITEM.fullmatch(line):
        return True
    found = _MARKDOWN_ITEM.fullmatch(line)
    return bool(found) and re.sub(r"\\(.)", r"\1", found.group(1)) == \
        PurePosixPath(unquote(found.group(2))).stem


def _shape(block: str) -> list[str] | None:
    """The block's lines with each link line as "-" (None when it is not in the form
    `render_block` writes: an optional `## heading`, `*lens*` labels and `- link` lines
    of one link each, as lenslink formats links)."""
    lines = [line.rstrip("\r\n") for line in split_lines(block)]
    if len(lines) < 2 or lines[0] != START or lines[-1] != END:
        return None
    shape = []
    for n, line in enumerate(lines[1:-1]):
        if _is_link_item(line):
            shape.append("-")
        elif (n == 0 and line.startswith("## ")) or (len(line) > 2 and line[0] == line[-1] == "*"):
            shape.append(line)
        else:
            return None
    return shape


def is_rendered(block: str, written: list[str] = ()) -> bool:
    """Whether a block (START through END) is lenslink's as it stands: in the form
    `render_block` writes and, when `written` holds blocks lenslink wrote there, with the
    heading, lens labels and number of links of one of them (the link lines themselves
    may differ: Obsidian rewrites links when a note is renamed). A block a person edited
    (a comment, a line of text or a link of their own, an alias, another heading) is not.
    """
    shape = _shape(block)
    return shape is not None and (not written or any(_shape(w) == shape for w in written))


def block_text(text: str) -> str | None:
    """The managed block's text (START through END line), None if there is none;
    BlockError when it is damaged."""
    found = find_block(text)
    return None if found is None else text[found.start:found.end]


def _block_lines(block: str) -> list[str]:
    lines = [line.rstrip("\r\n") for line in split_lines(block)]
    if block and (
        len(lines) < 2
        or lines[0] != START
        or lines[-1] != END
        or any(line.strip(" \t") in (START, END) for line in lines[1:-1])
    ):
        raise ValueError("block text must come from render_block (START ... END lines)")
    return lines


def splice(text: str, block: str) -> str:
    """Put `block` into `text`: replace our block in place, or append it; "" removes it.

    Only our block's lines and the separator described in the module docstring change.
    Raises BlockError on a damaged block, or when appending would land inside an
    unclosed code fence.
    """
    lines = _block_lines(block)
    found = find_block(text)
    if found is None:
        if not lines:
            return text
        if _scan(text)[1]:
            raise BlockError("note ends inside an unclosed code fence; close it first")
        newline = _dominant_ending(text)
        rendered = newline.join(lines)
        if not text.lstrip(BOM):
            return text + rendered + newline
        ending_len = _trailing_ending_len(text)
        if ending_len:
            return text + text[-ending_len:] + rendered + newline
        return text + newline + newline + rendered
    if not lines:
        start, end = _removal_span(text, found)
        return text[:start] + text[end:]
    old = split_lines(text[found.start : found.end])
    rendered = _ending_of(old[0]).join(lines) + _ending_of(old[-1])
    return text[: found.start] + rendered + text[found.end :]
