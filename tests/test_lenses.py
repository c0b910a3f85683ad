"""Lenses: config parsing and its error messages, note filters, chunking, lens texts."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from lenslink.errors import ConfigError
from lenslink.lenses import (
    CHUNK_WORDS,
    DEFAULT_LENSES,
    Lens,
    NoteFilter,
    NoteMeta,
    chunk_text,
    glob_match,
    load_config,
    parse_config,
)
from lenslink.notes import parse_note

WHERE = "V/.lenslink.toml"


def note(rel: str, text: str):
    """A real parsed note (the same path the indexer takes)."""
    return parse_note(rel, text.encode("utf-8"))


# ---------------------------------------------------------------- config files

def test_no_config_file_gives_the_three_builtin_lenses(tmp_path):
    config = load_config(tmp_path)
    assert config.names == ["topic", "project", "daily"]
    assert config.lenses == DEFAULT_LENSES
    assert (config.exclude, config.heading, config.embedder, config.source) == \
        ((), "Related notes", "minilm", "defaults")
    assert config.lens(None).name == "topic"


def test_sample_vault_config_loads_every_documented_setting(sample_vault):
    config = load_config(sample_vault)
    assert config.names == ["topic", "project", "daily", "cuisine", "climate", "size"]
    assert config.exclude == ("templates/**",)
    assert config.source == str(sample_vault / ".lenslink.toml")
    daily = config.lens("daily")
    assert daily.source == NoteFilter(daily=True)
    assert daily.candidates == NoteFilter(daily=False, exclude_globs=("people/**",))
    assert daily.top_k == 3
    cuisine = config.lens("cuisine")
    assert (cuisine.template, cuisine.prefix, cuisine.fields) == \
        ("{prefix}{title}: {fm[cuisine]}", "Cuisine of ", ("cuisine",))
    assert config.lens("project").candidates == \
        NoteFilter(globs=("projects/**",), tags=("project",))


def test_unknown_lens_name_lists_the_lenses(sample_vault):
    with pytest.raises(ConfigError, match=r"unknown lens 'colour'; lenses: topic, project, daily, cuisine"):
        load_config(sample_vault).lens("colour")


def test_broken_toml_names_the_file_and_says_fix_the_syntax(tmp_path):
    (tmp_path / ".lenslink.toml").write_text("[lenses.topic\nprefix = 'x'\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path / ".lenslink.toml") + ": not valid TOML")
    assert "fix the syntax" in message
    assert "\n" not in message


def test_config_that_is_not_utf8_is_a_config_error(tmp_path):
    (tmp_path / ".lenslink.toml").write_bytes(b"heading = '\xff'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)


def test_a_mistake_in_the_file_names_the_file_and_the_lens(tmp_path):
    (tmp_path / ".lenslink.toml").write_text("[lenses.cuisine]\ntop_k = 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert str(err.value) == (f"{tmp_path / '.lenslink.toml'} [lenses.cuisine] top_k: "
                              "must be an integer from 1 to 100")


@pytest.mark.parametrize("data, message", [
    # unknown keys: named, with the allowed ones
    ({"lense": {}}, "V/.lenslink.toml: unknown key 'lense'; allowed: embedder, embedder_options, exclude, heading, label, lenses"),
    ({"lenses": {"a": {"tmpl": "x"}}}, "[lenses.a]: unknown key 'tmpl'; allowed: candidates, description, fields"),
    ({"lenses": {"a": {"source": {"glob": ["x/**"]}}}}, "[lenses.a] source: unknown key 'glob'; allowed: daily, exclude_globs"),
    # wrong types
    ({"lenses": [1]}, "[lenses] must be a table of lens tables"),
    ({"lenses": {"a": 3}}, "[lenses.a]: must be a table"),
    ({"lenses": {"a": {"template": 3}}}, "[lenses.a] template: must be a string"),
    ({"lenses": {"a": {"prefix": 3}}}, "[lenses.a] prefix: must be a string"),
    ({"lenses": {"a": {"description": ["x"]}}}, "[lenses.a] description: must be a string"),
    ({"lenses": {"a": {"fields": [1]}}}, "[lenses.a] fields: must be a list of strings"),
    ({"lenses": {"a": {"source": "daily/**"}}}, "[lenses.a] source: must be a table such as { globs = [\"daily/**\"] }"),
    ({"lenses": {"a": {"source": {"daily": "yes"}}}}, "[lenses.a] source daily: must be true or false"),
    ({"lenses": {"a": {"candidates": {"tags": [1]}}}}, "[lenses.a] candidates tags: must be a list of strings"),
    ({"lenses": {"a": {"candidates": {"frontmatter": "x"}}}}, "[lenses.a] candidates frontmatter: must be a table"),
    ({"exclude": 5}, "V/.lenslink.toml: exclude: must be a list of strings"),
    ({"heading": "two\nlines"}, "heading must be a one-line string"),
    ({"heading": 3}, "heading must be a one-line string"),
    ({"embedder": 5}, "embedder must be a string such as \"minilm\""),
    ({"embedder_options": "x"}, "[embedder_options] must be a table"),
    ({"writer": 3}, "writer must be the name of the one computer that writes blocks"),
    ({"writer": " "}, "writer must be the name of the one computer that writes blocks"),
    # placeholders
    ({"lenses": {"a": {"template": "{titel}\n{body}"}}},
     "[lenses.a] template: unknown placeholder {titel}; use {aliases}, {body}, {folder}, {prefix}, {tags}, {title} or {fm[field]}"),
    ({"lenses": {"a": {"template": "{title.upper}"}}}, "unknown placeholder {title.upper}"),
    ({"lenses": {"a": {"template": "{0}"}}}, "unknown placeholder {0}"),
    ({"lenses": {"a": {"template": "{fm}"}}}, "template: write frontmatter fields as {fm[field]}"),
    ({"lenses": {"a": {"template": "{title"}}}, "write literal braces as {{ }}"),
    # fm field not in fields
    ({"lenses": {"a": {"template": "{fm[cuisine]}"}}}, "template: add 'cuisine' to fields = [...] to use {fm[cuisine]}"),
    ({"lenses": {"a": {"template": "{fm[cuisine]}", "fields": ["climate"]}}}, "add 'cuisine' to fields"),
    # invalid globs
    ({"lenses": {"a": {"source": {"globs": ["/abs/**"]}}}}, "[lenses.a] source: invalid glob '/abs/**'; use vault-relative globs like \"daily/**\""),
    ({"lenses": {"a": {"candidates": {"exclude_globs": ["a\\b"]}}}}, "[lenses.a] candidates: invalid glob"),
    ({"lenses": {"a": {"source": {"globs": [" "]}}}}, "invalid glob ' '"),
    ({"exclude": ["/templates/**"]}, "V/.lenslink.toml: exclude: invalid glob '/templates/**'"),
    # bad top_k / min_score
    ({"lenses": {"a": {"top_k": 0}}}, "[lenses.a] top_k: must be an integer from 1 to 100"),
    ({"lenses": {"a": {"top_k": 101}}}, "top_k: must be an integer from 1 to 100"),
    ({"lenses": {"a": {"top_k": "5"}}}, "top_k: must be an integer from 1 to 100"),
    ({"lenses": {"a": {"top_k": 2.5}}}, "top_k: must be an integer from 1 to 100"),
    ({"lenses": {"a": {"top_k": True}}}, "top_k: must be an integer from 1 to 100"),
    ({"lenses": {"a": {"min_score": 1.5}}}, "[lenses.a] min_score: must be a number from 0 to 1"),
    ({"lenses": {"a": {"min_score": -0.1}}}, "min_score: must be a number from 0 to 1"),
    ({"lenses": {"a": {"min_score": "0.5"}}}, "min_score: must be a number from 0 to 1"),
    # lens names
    ({"lenses": {"my lens": {}}}, "[lenses.my lens]: lens names use letters, digits, '-' and '_' only"),
])
def test_every_config_mistake_is_one_line_naming_the_key_and_the_fix(data, message):
    with pytest.raises(ConfigError) as err:
        parse_config(data, WHERE)
    text = str(err.value)
    assert message in text
    assert text.startswith(WHERE)
    assert "\n" not in text


def test_valid_config_values_are_kept():
    config = parse_config({
        "exclude": "templates/**",  # one string is a list of one
        "heading": "  See also  ",
        "embedder": "openai",
        "embedder_options": {"model": "m", "base_url": "http://x"},
        "lenses": {"people": {
            "description": "d", "template": "{prefix}{fm[role]} {title}", "prefix": "P: ",
            "fields": ["role"], "top_k": 7, "min_score": 1,
            "source": {"tags": ["#Person"], "frontmatter": {"type": "person"}},
            "candidates": {"globs": ["people/**"], "exclude_tags": ["#Archived"], "daily": False},
        }},
    }, WHERE)
    lens = config.lens("people")
    assert config.exclude == ("templates/**",)
    assert config.heading == "See also"
    assert config.embedder_options == (("base_url", "http://x"), ("model", "m"))
    assert lens == Lens(
        name="people", description="d", template="{prefix}{fm[role]} {title}", prefix="P: ",
        fields=("role",), top_k=7, min_score=1.0,
        source=NoteFilter(tags=("person",), frontmatter=(("type", "person"),)),
        candidates=NoteFilter(globs=("people/**",), exclude_tags=("archived",), daily=False))
    assert config.names == ["people"]  # lenses given: the defaults are not added


def test_empty_lenses_table_falls_back_to_the_defaults():
    assert parse_config({"lenses": {}}, WHERE).lenses == DEFAULT_LENSES


# ---------------------------------------------------------------- filters

@pytest.mark.parametrize("path, pattern, expected", [
    ("daily/2026-11-05.md", "daily/**", True),
    ("daily/2026/11/05.md", "daily/**", True),
    ("dailyish/x.md", "daily/**", False),
    ("daily.md", "daily/**", False),
    ("x.md", "**/*.md", True),
    ("a/b/c/x.md", "**/*.md", True),
    ("work/projects/x.md", "**/projects/**", True),
    ("projects/x.md", "**/projects/**", True),
    ("a/b/x.md", "a/*.md", False),   # * stays inside one folder
    ("a/x.md", "a/*.md", True),
    ("Projects/Big Plan.md", "projects/*plan.md", True),  # case-insensitive
    ("a/x1.md", "a/x?.md", True),
    ("a/x.md", "a/x?.md", False),
    ("a+b/(x).md", "a+b/(x).md", True),  # regex characters are literal
])
def test_glob_match(path, pattern, expected):
    assert glob_match(path, pattern) is expected


def meta(path="n.md", tags=(), fm=None, daily=False):
    return NoteMeta(path=path, tags=tuple(tags), frontmatter=fm or {}, is_daily=daily)


def test_empty_filter_matches_every_note():
    assert NoteFilter().matches(meta())
    assert NoteFilter().matches(meta("daily/2026-11-05.md", daily=True))


def test_tag_filter_matches_nested_tags_but_not_prefixes_of_words():
    f = NoteFilter(tags=("project",))
    assert f.matches(meta(tags=["project"]))
    assert f.matches(meta(tags=["project/garden"]))       # nested tag
    assert not f.matches(meta(tags=["projects"]))          # another word
    assert not f.matches(meta(tags=["work/project"]))      # parent is not the tag
    assert not f.matches(meta(tags=[]))
    assert NoteFilter(tags=("project/garden",)).matches(meta(tags=["project/garden/beds"]))
    assert not NoteFilter(tags=("project/garden",)).matches(meta(tags=["project"]))


def test_frontmatter_filter_compares_values_case_insensitively_and_inside_lists():
    f = NoteFilter(frontmatter=(("status", "active"),))
    assert f.matches(meta(fm={"status": "Active"}))
    assert f.matches(meta(fm={"status": ["done", "active"]}))
    assert not f.matches(meta(fm={"status": "done"}))
    assert not f.matches(meta(fm={}))
    assert not f.matches(meta(fm={"status": None}))
    assert NoteFilter(frontmatter=(("year", 2026),)).matches(meta(fm={"year": 2026}))
    assert NoteFilter(frontmatter=(("draft", True),)).matches(meta(fm={"draft": True}))
    assert not NoteFilter(frontmatter=(("draft", True),)).matches(meta(fm={"draft": False}))


def test_any_include_key_is_enough():
    f = NoteFilter(globs=("projects/**",), tags=("project",), frontmatter=(("type", "project"),))
    assert f.matches(meta("projects/a.md"))
    assert f.matches(meta("elsewhere/a.md", tags=["project"]))
    assert f.matches(meta("elsewhere/a.md", fm={"type": "project"}))
    assert not f.matches(meta("elsewhere/a.md", tags=["topic"], fm={"type": "topic"}))


def test_daily_key_is_a_requirement_not_an_alternative():
    days = NoteFilter(daily=True)
    assert days.matches(meta("daily/2026-11-05.md", daily=True))
    assert not days.matches(meta("topics/x.md"))
    not_days = NoteFilter(daily=False, globs=("daily/**", "topics/**"))
    assert not not_days.matches(meta("daily/2026-11-05.md", daily=True))
    assert not_days.matches(meta("topics/x.md"))
    assert not not_days.matches(meta("people/x.md"))


def test_exclude_keys_win_over_includes():
    f = NoteFilter(globs=("**",), exclude_globs=("people/**",), exclude_tags=("#Archived",))
    assert f.matches(meta("topics/x.md"))
    assert not f.matches(meta("people/x.md"))
    assert not f.matches(meta("topics/x.md", tags=["archived"]))
    assert not f.matches(meta("topics/x.md", tags=["archived/2024"]))  # nested excluded tag
    assert NoteFilter(exclude_tags=("journal",)).matches(meta(tags=["daily"]))


def test_sample_config_filters_on_real_notes(sample_vault):
    from lenslink.index import note_meta
    from lenslink.notes import read_note

    config = load_config(sample_vault)
    day = note_meta(read_note(sample_vault, "daily/2026-11-05.md"))
    project = note_meta(read_note(sample_vault, "projects/Sourdough starter.md"))
    person = note_meta(read_note(sample_vault, "people/Tom Becker.md"))
    city = note_meta(read_note(sample_vault, "cities/Naples.md"))
    daily, cuisine = config.lens("daily"), config.lens("cuisine")
    assert daily.source.matches(day) and not daily.candidates.matches(day)
    assert daily.candidates.matches(project) and not daily.source.matches(project)
    assert not daily.candidates.matches(person)  # exclude_globs people/**
    assert config.lens("project").candidates.matches(project)
    assert not config.lens("project").candidates.matches(city)
    assert cuisine.applies(city) and not cuisine.applies(project)


# ---------------------------------------------------------------- chunking

def words(text: str) -> list[str]:
    return text.split()


def test_short_text_is_one_chunk_and_empty_text_none():
    assert chunk_text("# Title\n\nA short note.\n", 160) == ["# Title\n\nA short note."]
    assert chunk_text("", 160) == []
    assert chunk_text("  \n\n ", 160) == []


def long_note() -> str:
    sections = []
    for s in range(6):
        paras = [" ".join(f"s{s}p{p}w{w}" for w in range(30)) for p in range(3)]
        sections.append(f"## Section {s}\n\n" + "\n\n".join(paras) + "\n")
    return "Intro line before any heading.\n\n" + "\n".join(sections)


def test_long_text_is_split_at_headings_and_loses_no_word():
    text = long_note()
    chunks = chunk_text(text, 100)
    assert len(chunks) > 1
    assert all(len(words(c)) <= 100 for c in chunks)
    assert words(" ".join(chunks)) == words(text)  # every word, in order
    # each section (93 words) fits in a chunk, two do not: a chunk holds whole sections
    assert all(c.count("## Section") == 1 for c in chunks)
    for s in range(6):
        (home,) = [c for c in chunks if f"## Section {s}\n" in c]
        assert all(f"s{s}p{p}w{w}" in home for p in range(3) for w in range(30))


def test_a_section_too_long_is_split_at_paragraphs():
    text = "## Only\n\n" + "\n\n".join(" ".join(f"p{p}w{w}" for w in range(40)) for p in range(5))
    chunks = chunk_text(text, 100)
    assert words(" ".join(chunks)) == words(text)
    assert all(len(words(c)) <= 100 for c in chunks)
    # no paragraph is cut in two: each chunk ends with the last word of a paragraph
    assert all(re.search(r"w39$", c) for c in chunks)


def test_one_huge_paragraph_is_split_into_windows():
    text = " ".join(f"w{i}" for i in range(1000))
    chunks = chunk_text(text, CHUNK_WORDS)
    assert [len(words(c)) for c in chunks] == [160] * 6 + [40]
    assert words(" ".join(chunks)) == words(text)


# ---------------------------------------------------------------- lens texts

def test_default_lens_text_is_title_and_clean_body():
    n = note("topics/Sourdough.md", "---\ntags: [baking]\n---\nA [[Starter|starter]] needs rye.\n")
    assert Lens("topic").texts(n) == ["Sourdough\nA starter needs rye."]


def test_prefix_is_put_in_front():
    n = note("Gus.md", "Feed twice a day.\n")
    assert Lens("project", prefix="Project this note belongs to: ").texts(n) == \
        ["Project this note belongs to: Gus\nFeed twice a day."]


def test_template_with_fields_folder_aliases_and_tags():
    n = note("cities/Naples.md",
             "---\ncuisine: pizza\ncountry: Italy\naliases: [Napoli, Neapel]\ntags: [city, italy]\n---\n"
             "Body text.\n")
    lens = Lens("c", template="{prefix}{title} ({folder}; {aliases}): {fm[cuisine]} / {fm[country]}",
                prefix="Cuisine of ", fields=("cuisine", "country"))
    assert lens.texts(n) == ["Cuisine of Naples (cities; Napoli, Neapel): pizza / Italy"]
    tags = Lens("t", template="{tags}").texts(n)[0]
    assert "city" in tags and "italy" in tags


def test_missing_or_list_frontmatter_fields_render_as_text():
    lens = Lens("c", template="{title}: {fm[cuisine]}", fields=("cuisine",))
    assert lens.texts(note("Oslo.md", "no frontmatter\n")) == ["Oslo:"]
    assert lens.texts(note("Lyon.md", "---\ncuisine: [quenelles, offal]\n---\n")) == \
        ["Lyon: quenelles, offal"]


def test_template_without_body_gives_one_text_even_for_a_long_note():
    n = note("big.md", " ".join(f"w{i}" for i in range(2000)))
    assert Lens("t", template="{title}").texts(n) == ["big"]


def test_long_body_gives_one_text_per_chunk_each_with_the_template_around_it():
    body = long_note()
    n = note("Long.md", body)
    texts = Lens("t", prefix="P: ").texts(n)
    assert len(texts) == len(chunk_text(n.clean_text, CHUNK_WORDS)) > 1
    assert all(t.startswith("P: Long\n") for t in texts)
    assert words(" ".join(t[len("P: Long\n"):] for t in texts)) == words(body)


def test_empty_note_still_has_one_text():
    assert Lens("topic").texts(note("Empty idea.md", "")) == ["Empty idea"]


def test_literal_braces_in_a_template():
    assert Lens("t", template="{{{title}}}").texts(note("x.md", "")) == ["{x}"]


def test_signature_follows_what_decides_the_texts_only():
    base = Lens("t")
    assert dataclasses.replace(base, top_k=50).signature == base.signature
    assert dataclasses.replace(base, min_score=0.5).signature == base.signature
    assert dataclasses.replace(base, description="other").signature == base.signature
    changed = [dataclasses.replace(base, template="{title}"),
               dataclasses.replace(base, prefix="X: "),
               dataclasses.replace(base, fields=("a",)),
               dataclasses.replace(base, source=NoteFilter(daily=True)),
               dataclasses.replace(base, candidates=NoteFilter(tags=("x",)))]
    signatures = {base.signature} | {lens.signature for lens in changed}
    assert len(signatures) == 1 + len(changed)
