"""The managed block: finding, rendering and splicing without touching the user's text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenslink.block import (
    END,
    START,
    Block,
    find_block,
    remove_block,
    render_block,
    splice,
    strip_block_lenient,
)
from lenslink.errors import BlockError

BLOCK = render_block([("topic", ["[[Alpha]]", "[[Beta]]"])])
OTHER = render_block([("people", ["[[Gamma]]"])])


def test_render_block_layout_is_stable():
    groups = [("topic", ["[[A]]", "[[B]]"]), ("empty", []), ("people", ["[[C]]"])]
    assert render_block(groups) == (
        f"{START}\n## Related notes\n*topic*\n- [[A]]\n- [[B]]\n*people*\n- [[C]]\n{END}\n"
    )


def test_render_block_options():
    groups = [("topic", ["[[A]]", "[[B]]"]), ("people", ["[[B]]", "[[C]]"])]
    assert render_block(groups, heading="See also", newline="\r\n", show_lens_names=False) == (
        f"{START}\r\n## See also\r\n- [[A]]\r\n- [[B]]\r\n- [[C]]\r\n{END}\r\n"
    )


def test_render_block_all_empty_means_no_block():
    assert render_block([("topic", []), ("people", [])]) == ""
    assert render_block([]) == ""


def test_render_block_keeps_each_link_on_one_line():
    block = render_block([("topic", [f"[[evil\n{END}\nname]]"])])
    assert block.count("\n") == 5
    assert find_block(block) == Block(0, len(block))


@pytest.mark.parametrize(
    "before, after",
    [
        ("", ""),
        ("text\n\n", "\nmore\n"),
        ("\ufeff", ""),
        ("a\r\n\r\n", "b\r\n"),
        ("mixed\r\nlines\n", "tail"),
        ("---\ntitle: x\n---\nbody\n", ""),
    ],
)
def test_find_block_spans_marker_lines(before, after):
    newline = "\r\n" if "\r\n" in before else "\n"
    block = BLOCK.replace("\n", newline)
    text = before + block + after
    assert find_block(text) == Block(len(before), len(before) + len(block))


def test_find_block_without_final_newline_and_with_spaces():
    text = f"a\n  {START}\t\n- [[x]]\n {END} "
    assert find_block(text) == Block(2, len(text))


def test_find_block_lone_cr_endings():
    text = f"a\r{START}\r- x\r{END}\rb"
    assert find_block(text) == Block(2, len(text) - 1)


@pytest.mark.parametrize(
    "text",
    [
        f"```\n{START}\n{END}\n```\n",
        f"~~~~ python\n{START}\n~~~\n{END}\n~~~~\n",
        f"> ```\n> {START}\n> {END}\n> ```\n",
        f"  ```md\n{END}\n  ```\n",
        f"Write `{START}` on a line of its own.\n",
        f"> {START}\n> {END}\n",
        f"{START} and more\n{END}.\n",
    ],
)
def test_markers_in_code_quotes_or_prose_do_not_count(text):
    assert find_block(text) is None


def test_block_after_a_closed_fence_is_found():
    text = f"```\n{START}\n```\n\n{BLOCK}"
    assert find_block(text) == Block(text.index(BLOCK), len(text))


def test_inline_triple_backticks_do_not_open_a_fence():
    text = f"```not a fence```\n{BLOCK}"
    assert find_block(text) == Block(text.index(BLOCK), len(text))


@pytest.mark.parametrize(
    "text, message",
    [
        (f"{BLOCK}middle\n{BLOCK}", "two lenslink blocks"),
        (f"a\n{START}\n- x\n", "start marker without end"),
        (f"{START}\n{START}\n{END}\n", "start marker without end"),
        (f"a\n{END}\n", "end marker without start"),
        (f"{END}\n{START}\n", "end marker without start"),
    ],
)
def test_damaged_blocks_raise(text, message):
    with pytest.raises(BlockError, match=message):
        find_block(text)
    with pytest.raises(BlockError, match=message):
        splice(text, OTHER)
    with pytest.raises(BlockError, match=message):
        splice(text, "")
    assert remove_block(text) == text
    assert strip_block_lenient(text) == text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", BLOCK),
        ("\ufeff", "\ufeff" + BLOCK),
        ("note\n", "note\n\n" + BLOCK),
        ("note", "note\n\n" + BLOCK[:-1]),
        ("note\n\n", "note\n\n\n" + BLOCK),
        ("a\r\nb\r\n", "a\r\nb\r\n\r\n" + BLOCK.replace("\n", "\r\n")),
        ("a\r\nb", "a\r\nb\r\n\r\n" + BLOCK.replace("\n", "\r\n")[:-2]),
        ("a\nb\r\nc\r\n", "a\nb\r\nc\r\n\r\n" + BLOCK.replace("\n", "\r\n")),
        ("a\r", "a\r\r" + BLOCK.replace("\n", "\r")),
        ("a\nb\nc\r", "a\nb\nc\r\r" + BLOCK),
    ],
)
def test_append_adds_only_after_the_text_and_remove_restores_it(text, expected):
    result = splice(text, BLOCK)
    assert result == expected
    assert splice(result, "") == text
    assert remove_block(result) == text
    assert splice(result, BLOCK) == result


def test_replace_in_place_keeps_text_around_the_block():
    before, after = "# Title\r\n\r\nintro  \r\n", "\r\n## Later\r\ntail"
    text = before + BLOCK.replace("\n", "\r\n") + after
    result = splice(text, OTHER)
    assert result == before + OTHER.replace("\n", "\r\n") + after
    assert splice(result, BLOCK) == text


def test_replace_keeps_a_missing_final_newline():
    text = "note\n\n" + BLOCK[:-1]
    assert splice(text, OTHER) == "note\n\n" + OTHER[:-1]


def test_remove_block_in_the_middle_removes_only_its_lines():
    text = "top\n\n" + BLOCK + "\nbottom\n"
    assert splice(text, "") == "top\n\n\nbottom\n"


def test_remove_when_there_is_no_block_is_identity():
    assert splice("plain\n", "") == "plain\n"


def test_append_refuses_to_land_inside_an_unclosed_fence():
    with pytest.raises(BlockError, match="unclosed code fence"):
        splice("text\n```python\nx = 1\n", BLOCK)


def test_splice_rejects_text_that_is_not_a_block():
    with pytest.raises(ValueError):
        splice("note\n", "- [[x]]\n")


# Property tests: random notes never lose a character.

_interesting_lines = st.sampled_from(
    ["", " ", "```", "~~~", "> ```", "---", "...", "# Heading", "- item", "%% note %%",
     f"`{START}`", f"> {END}", "\ufeff", "\t"]
)
_endings = st.sampled_from(["\n", "\r\n", "\r"])
_line = st.one_of(st.text(max_size=30), _interesting_lines)


@st.composite
def notes(draw) -> str:
    lines = draw(st.lists(st.tuples(_line, _endings), max_size=12))
    text = "".join(line + ending for line, ending in lines)
    if draw(st.booleans()):
        text += draw(_line)  # no final newline (unless the line is empty)
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text.replace("lenslink", "lens-link")


def _ends_in_fence(text: str) -> bool:
    from lenslink.block import _scan

    return _scan(text)[1]


@settings(max_examples=300, deadline=None)
@given(text=notes(), labels=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3))
def test_splice_round_trips_random_notes(text, labels):
    block = render_block([(label, [f"[[{label}]]"]) for label in labels])
    try:
        once = splice(text, block)
    except BlockError:
        assert _ends_in_fence(text)  # the only reason a marker-free note is refused
        return
    found = find_block(once)
    assert found is not None
    assert once.startswith(text)  # appending only adds characters after the user's text
    assert splice(once, "") == text
    assert remove_block(once) == text
    assert splice(once, block) == once
    assert splice(splice(once, OTHER), block) == once


def test_is_rendered_knows_lenslinks_form_from_a_hand_edit():
    from lenslink.block import is_rendered
    from lenslink.writeback import LinkStyle
    paths = ["A note.md", "a/b.md", "Note (1).md", "C# tricks.md", "weird [x] name.md", "x|y.md"]
    links = [style.format_link(p, "src.md", {}) for p in paths
             for style in (LinkStyle(), LinkStyle(use_markdown_links=True))]
    ours = render_block([("topic", links[:6]), ("project", links[6:])])
    assert "[C# tricks](C%23%20tricks.md)" in ours and "[[x|y]]" not in ours
    assert is_rendered(ours) and is_rendered(ours.replace("\n", "\r\n"))
    assert is_rendered(ours.replace("## Related notes\n", ""))
    assert not is_rendered(ours.replace("- [[A note]]", "- [[A note]] where it began"))
    assert not is_rendered(ours.replace("- [[A note]]", "- [[A note|my alias]]"))
    assert not is_rendered(ours.replace("- [[A note]]", "- [[A note#Part]]"))
    assert not is_rendered(ours.replace("[A note](A%20note.md)", "[Mine](A%20note.md)"))
    assert not is_rendered(ours.replace(END, "my own line\n" + END))
    assert not is_rendered(ours.replace(END, "%% a comment %%\n" + END))
    assert not is_rendered(ours.replace(END, "\n" + END))  # a blank line added
    # against what lenslink wrote there: the same heading, labels and number of links
    assert is_rendered(ours.replace("[[A note]]", "[[A renamed note]]"), [ours])  # Obsidian
    assert not is_rendered(ours.replace(END, "- [[Python]]\n" + END), [ours])
    assert not is_rendered(ours.replace("- [[A note]]\n", ""), [ours])
    assert not is_rendered(ours.replace("*topic*", "*mine*"), [ours])
    assert not is_rendered(ours.replace("## Related notes", "## See also"), [ours])
    assert is_rendered(ours.replace("## Related notes", "## See also"))  # nothing to compare
