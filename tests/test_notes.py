"""Reading a vault: scanning, parsing one note, links and their resolution."""
from __future__ import annotations

import datetime
import hashlib
import importlib.util
import os
import random
from pathlib import Path

import pytest

from lenslink.block import END, START
from lenslink.errors import NoteError, UnsafePathError
from lenslink.links import CodeSpans, Resolver, link_names, markdown_links, note_name, wikilinks
from lenslink.notes import (is_note_path, parse_note, read_note, resolve_links, scan_paths,
                            scan_vault)

SHARED = Path(__file__).resolve().parents[2] / "shared"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write(root: Path, rel: str, text: str | bytes = "") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def note(text: str, rel: str = "n.md"):
    return parse_note(rel, text.encode("utf-8"))


@pytest.fixture(scope="module")
def linkgraph():
    """The evaluation's reference parser, when the shared folder is there."""
    path = SHARED / "eval" / "linkgraph.py"
    if not path.exists():
        pytest.skip("shared/eval/linkgraph.py not present")
    spec = importlib.util.spec_from_file_location("linkgraph_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- scan_vault

SCANNED = ["a.md", "B.MD", "sub/c.md", "sub/deep/d.md", "image.png", "notes.txt",
           ".obsidian/workspace.md", ".trash/old.md", "sub/.hidden/x.md", ".dot.md",
           "templates/t.md", "Templates/nested/t2.md", "drawing.excalidraw.md",
           "sub/other.Excalidraw.md", "Archive/old.md", "Archive/2020/older.md"]


def test_scan_skips_hidden_and_excluded_and_non_markdown(tmp_path):
    for rel in SCANNED:
        write(tmp_path, rel, "x")
    scan = scan_vault(tmp_path, ["templates/**", "*.excalidraw.md", "Archive/*"])
    assert scan.paths == ("B.MD", "a.md", "sub/c.md", "sub/deep/d.md")
    assert scan.problems == ()
    assert scan_vault(tmp_path).paths == (
        "Archive/2020/older.md", "Archive/old.md", "B.MD", "Templates/nested/t2.md",
        "a.md", "drawing.excalidraw.md", "sub/c.md", "sub/deep/d.md",
        "sub/other.Excalidraw.md", "templates/t.md")


def test_is_note_path_agrees_with_scan(tmp_path):
    rels = ["a.md", "B.MD", "x.txt", ".obsidian/w.md", "sub/.h/x.md", "templates/t.md",
            "Archive/2020/o.md", "d/e.excalidraw.md", "d/keep.md", "daily/x.md", "w/daily/y.md"]
    for rel in rels:
        write(tmp_path, rel, "x")
    exclude = ["templates/**", "*.excalidraw.md", "Archive/*", "daily/"]
    listed = set(scan_vault(tmp_path, exclude).paths)
    assert listed == {"a.md", "B.MD", "d/keep.md"}
    assert {rel for rel in rels if is_note_path(rel, exclude)} == listed


def test_scan_exclude_anchoring_and_double_star(tmp_path):
    for rel in ["daily/2024-01-01.md", "work/daily/x.md", "a/b/c/secret.md", "keep.md"]:
        write(tmp_path, rel, "x")
    assert scan_vault(tmp_path, ["daily/"]).paths == ("a/b/c/secret.md", "keep.md")
    assert scan_vault(tmp_path, ["/daily/*"]).paths == (
        "a/b/c/secret.md", "keep.md", "work/daily/x.md")
    assert scan_vault(tmp_path, ["**/secret.md", "work/**"]).paths == (
        "daily/2024-01-01.md", "keep.md")
    assert scan_vault(tmp_path, ["/x.md", "/keep.md"]).paths == (
        "a/b/c/secret.md", "daily/2024-01-01.md", "work/daily/x.md")
    assert scan_vault(tmp_path, ["secret.md", "a/b/[c-d]/*", "  "]).paths == (
        "daily/2024-01-01.md", "keep.md", "work/daily/x.md")


def test_scan_missing_root_raises(tmp_path):
    with pytest.raises(NoteError, match="not found"):
        scan_vault(tmp_path / "nope")


def symlink_vault(tmp_path: Path) -> Path:
    """A vault with symlinks of every kind: outside, in-vault, looping, broken."""
    vault, outside = tmp_path / "vault", tmp_path / "outside"
    write(vault, "real/n.md", "x")
    write(outside, "secret.md", "x")
    (vault / "out_dir").symlink_to(outside, target_is_directory=True)
    (vault / "out_file.md").symlink_to(outside / "secret.md")
    (vault / "alias.md").symlink_to(vault / "real" / "n.md")  # in-vault file: kept
    (vault / "real" / "loop").symlink_to(vault, target_is_directory=True)  # ancestor loop
    (vault / "mirror").symlink_to(vault / "real", target_is_directory=True)  # in-vault dir
    (vault / "a.md").symlink_to(vault / "b.md")
    (vault / "b.md").symlink_to(vault / "a.md")  # file loop
    (vault / "gone.md").symlink_to(vault / "missing.md")
    (vault / "pic.png").symlink_to(outside / "pic.png")  # not a note: no word about it
    (vault / "skip.md").symlink_to(outside / "secret.md")
    return vault


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_scan_symlinks_outside_broken_and_loops(tmp_path):
    vault = symlink_vault(tmp_path)
    scan = scan_vault(vault, ["skip.md"])
    assert scan.paths == ("alias.md", "real/n.md")
    reasons = dict(scan.problems)
    assert set(reasons) == {"out_dir", "out_file.md", "a.md", "b.md", "gone.md"}
    assert "outside the vault" in reasons["out_file.md"]
    assert "broken or looping" in reasons["a.md"]
    with pytest.raises(UnsafePathError):
        read_note(vault, "out_file.md")


def _scan_paths_agrees(root, exclude, extra=()):
    """`scan_paths` of any one path finds it exactly when `scan_vault` does, with the
    same problem if the walk reports one."""
    walked = scan_vault(root, exclude)
    problems = dict(walked.problems)
    candidates = set(extra)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            candidates.add(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    for rel in sorted(candidates):
        one = scan_paths(root, [rel], exclude)
        assert one.paths == ((rel,) if rel in walked.paths else ()), rel
        if rel.lower().endswith(".md") and not os.path.isdir(root / rel):
            assert dict(one.problems) == ({rel: problems[rel]} if rel in problems else {}), rel
    assert scan_paths(root, sorted(candidates), exclude).paths == walked.paths


def test_scan_paths_finds_what_the_walk_finds(tmp_path):
    for rel in SCANNED + ["folder.md/inside.md", "daily/x.md", "w/daily/y.md"]:
        write(tmp_path, rel, "x")
    extra = ["gone.md", "sub/gone.md", "nowhere/x.md", "a.md/x.md", "", "sub//c.md"]
    for exclude in ([], ["templates/**", "*.excalidraw.md", "Archive/*", "daily/"]):
        _scan_paths_agrees(tmp_path, exclude, extra)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_scan_paths_treats_symlinks_as_the_walk_does(tmp_path):
    vault = symlink_vault(tmp_path)
    _scan_paths_agrees(vault, ["skip.md"], ["mirror/n.md", "out_dir/secret.md", "real/loop/alias.md"])


@pytest.mark.skipif(IS_ROOT, reason="root reads any folder")
def test_scan_unreadable_folder_is_reported_not_raised(tmp_path):
    write(tmp_path, "ok.md", "x")
    locked = tmp_path / "locked"
    write(tmp_path, "locked/n.md", "x")
    locked.chmod(0)
    try:
        scan = scan_vault(tmp_path)
    finally:
        locked.chmod(0o755)
    assert scan.paths == ("ok.md",)
    assert [rel for rel, _ in scan.problems] == ["locked"]


def test_scan_folder_error_is_reported_not_raised(tmp_path, monkeypatch):
    """Same as above without needing a non-root user: scandir fails on one folder."""
    write(tmp_path, "ok.md", "x")
    write(tmp_path, "locked/n.md", "x")
    real_scandir = os.scandir

    def scandir(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_vault(tmp_path)
    assert scan.paths == ("ok.md",)
    assert scan.problems == (("locked", "folder skipped: Permission denied"),)


# ---------------------------------------------------------------- read_note

def test_read_note_fields(tmp_path):
    raw = "---\ntitle: x\n---\nHello [[Other]]\n"
    write(tmp_path, "Folder/2024-03-05 Tue.md", raw)
    n = read_note(tmp_path, "Folder/2024-03-05 Tue.md")
    st = (tmp_path / "Folder/2024-03-05 Tue.md").stat()
    assert (n.path, n.title, n.folder) == ("Folder/2024-03-05 Tue.md", "2024-03-05 Tue", "Folder")
    assert n.is_daily and not n.opted_out
    assert n.frontmatter == {"title": "x"}
    assert n.body == "Hello [[Other]]\n"
    assert n.clean_text == "Hello Other\n"
    assert n.links == ("Other",)
    assert n.content_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert (n.mtime_ns, n.size, n.problems) == (st.st_mtime_ns, st.st_size, ())


@pytest.mark.parametrize("title, daily", [("2024-01-31", True), ("2024-01-31_Wednesday", True),
                                          ("2024-01-31-wed", True), ("2024-01-31 notes x", False),
                                          ("Meeting 2024-01-31", False), ("2024-1-31", False)])
def test_is_daily(title, daily):
    assert note("x", f"journal/{title}.md").is_daily is daily


def test_empty_note(tmp_path):
    write(tmp_path, "empty.md", "")
    n = read_note(tmp_path, "empty.md")
    assert (n.body, n.clean_text, n.links, n.tags, n.frontmatter, n.problems) == (
        "", "", (), (), {}, ())
    assert n.folder == "" and n.title == "empty"


def test_binary_vanished_too_large_and_unsafe(tmp_path):
    write(tmp_path, "bin.md", b"PK\x03\x04\x00\x00binary")
    with pytest.raises(NoteError, match="bin.md.*binary"):
        read_note(tmp_path, "bin.md")
    with pytest.raises(NoteError, match="gone.md.*vanished"):
        read_note(tmp_path, "gone.md")
    write(tmp_path, "big.md", "x" * 101)
    with pytest.raises(NoteError, match=r"big\.md.*limit of 100 bytes"):
        read_note(tmp_path, "big.md", max_bytes=100)
    assert read_note(tmp_path, "big.md", max_bytes=101).size == 101
    for rel in ["../x.md", "/etc/passwd", "a/../../x.md", ""]:
        with pytest.raises(UnsafePathError):
            read_note(tmp_path, rel)


@pytest.mark.skipif(IS_ROOT, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, "locked.md", "x")
    path.chmod(0)
    try:
        with pytest.raises(NoteError, match="locked.md.*permission denied"):
            read_note(tmp_path, "locked.md")
    finally:
        path.chmod(0o644)


def test_ten_megabyte_note(tmp_path):
    para = "Words about things [[Topic]] and `code` and more words here. #tag\n\n" + \
        "Plain prose without any markup, long enough to look like a paragraph. " * 8 + "\n\n"
    text = para * (10_000_000 // len(para) + 1)
    write(tmp_path, "big.md", text)
    n = read_note(tmp_path, "big.md")
    assert n.size >= 10_000_000 and n.links[:2] == ("Topic", "Topic")
    assert n.tags == ("tag",) and n.clean_text.startswith("Words about things Topic and")
    assert len(n.clean_text) == len(text) - 4 * text.count("[[")


def test_invalid_utf8_and_bom():
    n = parse_note("n.md", b"caf\xe9 [[Link]]\n")
    assert n.body == "caf\ufffd [[Link]]\n" and n.links == ("Link",)
    assert len(n.problems) == 1 and n.problems[0].startswith("not valid UTF-8")
    raw = "\ufeff---\ntags: a\n---\nbody\n".encode("utf-8")
    n = parse_note("n.md", raw)
    assert (n.frontmatter, n.body, n.problems) == ({"tags": "a"}, "body\n", ())
    assert n.content_hash == hashlib.sha256(raw).hexdigest()


# ---------------------------------------------------------------- frontmatter

def test_broken_yaml_keeps_body_with_one_problem():
    n = note("---\ntitle: [unclosed\ntags: x\n---\nThe body [[Still]] counts.\n")
    assert n.frontmatter == {} and n.body == "The body [[Still]] counts.\n"
    assert n.clean_text == "The body Still counts.\n" and n.links == ("Still",)
    assert len(n.problems) == 1 and n.problems[0].startswith("broken frontmatter: ")
    assert "line" in n.problems[0] and "\n" not in n.problems[0]


def test_frontmatter_not_a_mapping_and_edge_cases():
    n = note("---\n- a\n- b\n---\nbody")
    assert n.frontmatter == {} and n.body == "body" and "not a mapping" in n.problems[0]
    assert note("---\n---\nbody").body == "body"
    unclosed = note("---\ntitle: x\nbody")  # no closing line: all of it is body
    assert unclosed.frontmatter == {} and unclosed.body == "---\ntitle: x\nbody"
    assert note("\n---\na: 1\n---\nb").frontmatter == {}  # must start on line 1
    crlf = note("---\r\na: 1\r\n---\r\nbody\r\n")
    assert crlf.frontmatter == {"a": 1} and crlf.body == "body\r\n"
    assert note("---\n1: one\nwhen: 2024-01-02\n---\n").frontmatter == {
        "1": "one", "when": datetime.date(2024, 1, 2)}  # keys are strings, like properties


@pytest.mark.parametrize("value, opted_out", [
    ("false", True), ("no", True), ("off", True), ('"False"', True), ("'NO'", True),
    ("true", False), ("yes", False), ('"maybe"', False), ("", False)])
def test_opt_out(value, opted_out):
    assert note(f"---\nlenslink: {value}\n---\nx").opted_out is opted_out
    assert note("no frontmatter").opted_out is False


@pytest.mark.parametrize("yaml_text, aliases", [
    ("aliases: One", ("One",)),
    ("aliases: [One, Two]", ("One", "Two")),
    ("aliases:\n  - One\n  - 2", ("One", "2")),
    ("alias: Solo", ("Solo",)),
    ("aliases: [A]\nalias: B", ("A", "B")),
    ("aliases:", ()),
])
def test_aliases(yaml_text, aliases):
    assert note(f"---\n{yaml_text}\n---\nx").aliases == aliases


def test_frontmatter_wikilinks_count_as_links():
    n = note('---\nup: "[[Parent]]"\nrelated:\n  - "[[A|a]]"\n  - "[[B#h]]"\n---\nSee [[C]].')
    assert n.links == ("Parent", "A", "B", "C")
    assert n.clean_text == "See C."


# ---------------------------------------------------------------- tags

def test_tags_frontmatter_and_inline():
    text = ("---\ntags: [Project/Alpha, '#Beta']\ntag: gamma, delta epsilon\n---\n"
            "# Heading\n## Heading with #InHeading\n"
            "Text #Inline and #nested/tag/deep, #alpha.\n"
            "Not tags: a#b http://x.com/page#frag [link](#anchor) [[Note#Heading]] #123 # spaced\n"
            "`#incode` and\n```\n#fenced\n```\n%% #commented %% <!-- #html -->\n")
    assert note(text).tags == ("project/alpha", "beta", "gamma", "delta", "epsilon",
                               "inheading", "inline", "nested/tag/deep", "alpha")


def test_tags_string_and_duplicates():
    assert note("---\ntags: one two, Three\n---\n#one #ONE #four").tags == (
        "one", "two", "three", "four")
    assert note("---\ntags:\n---\nx").tags == ()


# ---------------------------------------------------------------- clean text and links

@pytest.mark.parametrize("text, clean, links", [
    ("[[Note]]", "Note", ("Note",)),
    ("[[Note|Shown text]]", "Shown text", ("Note",)),
    ("[[Folder/Sub/Note.md]]", "Note", ("Folder/Sub/Note.md",)),
    ("[[Note#Some heading]]", "Note", ("Note",)),
    ("[[Note#Heading|alias]]", "alias", ("Note",)),
    ("[[#Only heading]]", "Only heading", ("",)),
    ("[[#^block-id]]", "block-id", ("",)),
    ("a ![[Embedded note]] b ![[pic.png|200]]", "a  b ", ()),
    ("| [[Note\\|alias]] |", "| alias |", ("Note",)),
    ("`[[Code]]` and [[Real]]", "`[[Code]]` and Real", ("Real",)),
    ("```\n[[Fenced]]\n```\n", "```\n[[Fenced]]\n```\n", ()),
    ("~~~md\n[[Tilde]]\n~~~\n[[After]]", "~~~md\n[[Tilde]]\n~~~\nAfter", ("After",)),
    ("> ```\n> [[Quoted code]]\n> ```", "> ```\n> [[Quoted code]]\n> ```", ()),
    ("a %%hidden [[Hid]]%% b <!-- [[Html]] --> c", "a  b  c", ("Hid", "Html")),
    ("`%% not a comment %%` [[X]]", "`%% not a comment %%` X", ("X",)),
    ("[text](Other%20note.md) [web](https://x.org/a.md) ![img](p.png)", "text web ",
     ("Other note.md",)),
    ("[t](<Folder/My note.md#Part>) [u](../Up.md \"title\")", "t u",
     ("Folder/My note.md", "../Up.md")),
])
def test_clean_text_and_links(text, clean, links):
    n = note(text)
    assert (n.clean_text, n.links) == (clean, links)


def test_managed_block_is_removed(tmp_path):
    text = (f"Intro [[Mine]].\n\n{START}\n## Related notes\n- [[Suggested]]\n{END}\n")
    n = note(text)
    assert n.body == "Intro [[Mine]].\n" and n.clean_text == "Intro Mine.\n"
    assert n.links == ("Mine",) and n.problems == ()
    assert n.raw == text  # raw stays as read
    damaged = note(f"x\n{START}\n- [[Suggested]]\n")
    assert damaged.links == ("Suggested",)
    assert len(damaged.problems) == 1 and "managed block" in damaged.problems[0]


# ---------------------------------------------------------------- resolution

PATHS = ["Note.md", "a/Note.md", "a/b/Note.md", "c/d/Note.md", "a/Only.md", "x/y/Deep.md",
         "z/Deep.md", "Case Study.md", "a/b/Sibling.md", "Top.md", "a/b/Twin.md", "q/Twin.md"]


@pytest.mark.parametrize("link, source, target", [
    ("Twin", "a/b/Sibling.md", "a/b/Twin.md"),        # source's folder first
    ("Twin", "x/y/Deep.md", "q/Twin.md"),              # then the shortest path
    ("Note", "a/b/Sibling.md", "Note.md"),             # an exact vault path beats both
    ("Deep", "Top.md", "z/Deep.md"),                  # shortest wins over deeper
    ("Deep", "x/y/Other.md", "x/y/Deep.md"),           # ...unless in the source's folder
    ("b/Note", "Top.md", "a/b/Note.md"),               # path suffix match
    ("a/Note.md", "c/d/Note.md", "a/Note.md"),         # exact vault path, .md optional
    ("../Only", "a/b/Sibling.md", "a/Only.md"),        # relative to the source's folder
    ("./Sibling", "a/b/Note.md", "a/b/Sibling.md"),
    ("../../Top", "a/b/Sibling.md", "Top.md"),
    ("case STUDY", "Top.md", "Case Study.md"),         # case-insensitive
    ("A/ONLY.MD", "Top.md", "a/Only.md"),
    ("", "a/Only.md", "a/Only.md"),                    # [[#Heading]] is the note itself
    ("Missing", "Top.md", None),
    ("e/Note", "Top.md", None),
])
def test_resolver(link, source, target):
    assert Resolver(PATHS).resolve(link, source) == target


def test_resolver_named_lists_every_note_a_title_may_name():
    every = Resolver(PATHS)
    assert every.named("twin") == every.named("Twin.md") == ["a/b/Twin.md", "q/Twin.md"]
    assert every.named("Deep") == ["x/y/Deep.md", "z/Deep.md"]
    assert every.named("Note") == ["Note.md"]  # an exact vault path names one note
    assert every.named("b/Note") == ["a/b/Note.md"]
    assert every.named("a/Only") == every.named("only.MD") == ["a/Only.md"]
    assert every.named("Missing") == []


def test_resolve_links_distinct_no_self_no_unresolved():
    n = note("[[#Top]] [[Twin]] [[Missing]] [[Sibling]] [[twin]] [[Sibling#x]] [[a/b/Sibling]]"
             " [[Note]]", rel="a/b/Sibling.md")
    assert resolve_links(n, Resolver(PATHS)) == ["a/b/Twin.md", "Note.md"]
    m = note("[[Only]] [[Top]] [[Only|again]]", rel="Top.md")
    assert resolve_links(m, Resolver(PATHS)) == ["a/Only.md"]


# ---------------------------------------------------------------- agreement with the reference

def test_code_spans_and_wikilinks_agree_with_reference(linkgraph):
    rng = random.Random(7)
    pieces = ["`", "``", "```", "~~~", "a", " ", "\n", ">", "[[", "]]", "!", "|", "#", "\r\n",
              "x\\", "\u2028"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        assert CodeSpans(text).spans == linkgraph.code_spans(text), text
        ours = [(l.start, l.embed, l.path, l.subpath, l.alias) for l in wikilinks(text)]
        ref = [(m.start(), e, p, s, a) for m, e, p, s, a in linkgraph.parse_links(text)]
        assert ours == ref, text


def test_resolver_agrees_with_reference(linkgraph):
    rng = random.Random(3)
    names = ["Note", "note", "Other", "x y"]
    folders = ["", "a/", "a/b/", "B/", "c/a/"]
    for _ in range(300):
        paths = sorted({rng.choice(folders) + rng.choice(names) + ".md"
                        for _ in range(rng.randint(1, 8))})
        ours, ref = Resolver(paths), linkgraph.Resolver(paths)
        for _ in range(20):
            link = rng.choice(["", "../", "./", "a/", "/"]) + rng.choice(folders) + \
                rng.choice(names + [""]) + rng.choice(["", ".md", ".MD"])
            source = rng.choice(paths)
            assert ours.resolve(link, source) == ref.resolve(link, source), (paths, link, source)


def test_a_resolver_over_the_notes_a_link_may_name_resolves_it_the_same():
    """What a sync of a few notes relies on: it resolves their links against only the
    stored notes whose names `link_names` gives."""
    rng = random.Random(5)
    names = ["Note", "note", "Other", "x y", "a", "b"]
    folders = ["", "a/", "a/b/", "B/", "c/a/", "a/b/c/"]
    for _ in range(300):
        paths = sorted({rng.choice(folders) + rng.choice(names) + ".md"
                        for _ in range(rng.randint(1, 10))})
        every = Resolver(paths)
        for _ in range(20):
            link = rng.choice(["", "../", "./", "a/", "/", "../../"]) + rng.choice(folders) + \
                rng.choice(names + ["", ".", ".."]) + rng.choice(["", ".md", ".MD", "/"])
            source = rng.choice(paths)
            wanted = link_names(link, source)
            some = Resolver([p for p in paths if note_name(p) in wanted])
            assert some.resolve(link, source) == every.resolve(link, source), (paths, link, source)


@pytest.mark.parametrize("frontmatter", [
    'lenslink: false\ntitle: "Private: diary\n',   # broken YAML
    "- a list\nlenslink: no # not a mapping\n",
    "Lenslink:  'off'\n[broken\n",
])
def test_a_note_that_opted_out_stays_out_when_its_frontmatter_is_broken(frontmatter):
    n = note(f"---\n{frontmatter}---\nprivate words\n")
    assert n.opted_out and n.problems and n.body == "private words\n"


def test_broken_frontmatter_without_an_opt_out_is_only_reported():
    for fm in ('title: "x\nlenslink: true\n', "lenslink: falsey\n[x\n", "  lenslink: false\n[x\n"):
        n = note(f"---\n{fm}---\nbody\n")
        assert not n.opted_out and n.problems and n.frontmatter == {}


def _vaults():
    root = SHARED / "vaults"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


@pytest.mark.parametrize("vault", _vaults() or [None], ids=lambda p: p.name if p else "none")
def test_graph_agrees_with_reference_on_real_vaults(vault, linkgraph):
    """Wikilink graph equals linkgraph's exactly; markdown links may only add edges."""
    if vault is None:
        pytest.skip("no vaults under shared/vaults")
    ref, _ = linkgraph.build_graph(linkgraph.read_vault(vault))
    scan = scan_vault(vault)
    assert sorted(ref) == list(scan.paths)
    resolver = Resolver(scan.paths)
    extra = {}
    for rel in scan.paths:
        n = read_note(vault, rel)
        text = n.raw.lstrip("\ufeff")
        wiki = {}
        for link in wikilinks(text):
            dst = resolver.resolve(link.path, rel)
            if not link.embed and dst not in (None, rel):
                wiki.setdefault(dst)
        assert list(wiki) == ref[rel], rel
        full = resolve_links(n, resolver)
        md = {resolver.resolve(l.path, rel) for l in markdown_links(text) if not l.embed}
        assert set(ref[rel]) <= set(full) and set(full) - set(ref[rel]) <= md, rel
        if len(full) > len(ref[rel]):
            extra[rel] = sorted(set(full) - set(ref[rel]))
    assert len(extra) <= len(scan.paths) // 20, extra  # markdown links stay the exception
