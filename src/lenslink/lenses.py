"""Lenses: in which sense two notes are similar, read from the vault's `.lenslink.toml`.

A lens turns a note into the text(s) to embed (a template with a prompt prefix), says
which notes it applies to (`source`) and which may be suggested (`candidates`).
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAME = ".lenslink.toml"
DEFAULT_TEMPLATE = "{prefix}{title}\n{body}"
# A suggestion's calibrated score must reach this: a lens with a probability (trained, or
# calibrated on the vault's links) leaves out notes you would link 1 time in 20 or less;
# an untrained lens's percentile scores of its top notes are far above it.
DEFAULT_MIN_SCORE = 0.05
# all-MiniLM-L6-v2 reads 256 word pieces; ~1.3 pieces a word leaves room for title+prefix.
CHUNK_WORDS = 160
MAX_CHUNKS = 32
PLACEHOLDERS = {"prefix", "title", "body", "tags", "folder", "aliases", "fm"}
FILTER_KEYS = {"globs", "tags", "frontmatter", "daily", "exclude_globs", "exclude_tags"}
LENS_KEYS = {"description", "template", "prefix", "fields", "source", "candidates",
             "top_k", "min_score", "rewrite"}
REWRITE_KEYS = {"prompt", "model", "base_url", "api_key_env", "timeout", "max_retries"}
# The essay's prompt ("Don't use cosine similarity", section "Rewriting").
DEFAULT_REWRITE_PROMPT = ("Rewrite the following text in standard English using Markdown. "
                          "Focus on content, ignore style. Limit to 200 words.")
LABEL_KEYS = REWRITE_KEYS - {"prompt"}
TOP_KEYS = {"exclude", "heading", "embedder", "embedder_options", "lenses", "writer", "label"}


def glob_match(path: str, pattern: str) -> bool:
    """Case-insensitive path glob where `**` spans folders and `*` stays inside one."""
    return _glob_regex(pattern).fullmatch(path.lower()) is not None


_GLOB_CACHE: dict[str, re.Pattern] = {}


def _glob_regex(pattern: str) -> re.Pattern:
    rx = _GLOB_CACHE.get(pattern)
    if rx is None:
        out, i, p = [], 0, pattern.lower().strip("/")
        while i < len(p):
            if p.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            elif p.startswith("**", i):
                out.append(".*")
                i += 2
            elif p[i] == "*":
                out.append("[^/]*")
                i += 1
            elif p[i] == "?":
                out.append("[^/]")
                i += 1
            else:
                out.append(re.escape(p[i]))
                i += 1
        rx = _GLOB_CACHE[pattern] = re.compile("".join(out))
    return rx


@dataclass(frozen=True)
class NoteMeta:
    """What filters look at: available from the store without reading the file."""
    path: str
    tags: tuple[str, ...] = ()
    frontmatter: Mapping[str, Any] = field(default_factory=dict)
    is_daily: bool = False


@dataclass(frozen=True)
class NoteFilter:
    """Matches when any include key matches (or none is given) and no exclude key does."""
    globs: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    frontmatter: tuple[tuple[str, Any], ...] = ()
    daily: bool | None = None
    exclude_globs: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()

    def matches(self, note: NoteMeta) -> bool:
        tags = set(note.tags)
        if any(glob_match(note.path, g) for g in self.exclude_globs):
            return False
        if any(_tag_in(t, tags) for t in self.exclude_tags):
            return False
        if self.daily is not None and note.is_daily != self.daily:
            return False
        includes = [any(glob_match(note.path, g) for g in self.globs) if self.globs else None,
                    any(_tag_in(t, tags) for t in self.tags) if self.tags else None,
                    any(_fm_equal(note.frontmatter.get(k), v) for k, v in self.frontmatter)
                    if self.frontmatter else None]
        given = [x for x in includes if x is not None]
        return not given or any(given)


def _tag_in(tag: str, tags: set[str]) -> bool:
    tag = tag.lower().lstrip("#")
    return tag in tags or any(t.startswith(tag + "/") for t in tags)


def _fm_equal(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, list):
        return any(_fm_equal(a, wanted) for a in actual)
    return str(actual).lower() == str(wanted).lower() if actual is not None else False


class _Blank(dict):
    """Format mapping where a missing frontmatter field renders as an empty string."""
    def __missing__(self, key):
        return ""


@dataclass(frozen=True)
class RewriteSettings:
    """A chat model that rewrites a lens's texts before they are embedded, so that style,
    typos and formatting stop counting as similarity. Nothing is sent anywhere unless a
    lens has these settings."""
    model: str
    prompt: str = DEFAULT_REWRITE_PROMPT
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 120.0
    max_retries: int = 5


@dataclass(frozen=True)
class LabelSettings:
    """The chat model `lenslink label` asks whether the author would link two notes (the
    `[label]` table). Nothing is sent anywhere unless the vault's config has one."""
    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 120.0
    max_retries: int = 5


@dataclass(frozen=True)
class Lens:
    name: str
    description: str = ""
    template: str = DEFAULT_TEMPLATE
    prefix: str = ""
    fields: tuple[str, ...] = ()
    source: NoteFilter = NoteFilter()
    candidates: NoteFilter = NoteFilter()
    top_k: int = 5
    min_score: float = DEFAULT_MIN_SCORE
    rewrite: RewriteSettings | None = None

    @property
    def signature(self) -> str:
        """Hash of everything that decides this lens's texts (not top_k/min_score)."""
        parts = [self.template, self.prefix, list(self.fields), repr(self.source),
                 repr(self.candidates), CHUNK_WORDS, MAX_CHUNKS]
        if self.rewrite:  # only then, so that lenses without one keep their signature
            parts.append(["rewrite", self.rewrite.model, self.rewrite.prompt])
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def applies(self, note: NoteMeta) -> bool:
        return self.source.matches(note) or self.candidates.matches(note)

    def texts(self, note) -> list[str]:
        """The text(s) to embed for `note`: one per chunk of its body, in order."""
        values = {
            "prefix": self.prefix,
            "title": note.title,
            "tags": " ".join("#" + t for t in note.tags),
            "folder": note.folder,
            "aliases": ", ".join(note.aliases),
            "fm": _Blank({k: _fm_text(note.frontmatter.get(k)) for k in self.fields}),
        }
        if "{body}" not in self.template:
            return [self.template.format_map({**values, "body": ""}).strip()]
        chunks = chunk_text(note.clean_text, CHUNK_WORDS)[:MAX_CHUNKS] or [""]
        return [self.template.format_map({**values, "body": c}).strip() for c in chunks]


def _fm_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


HEADING = re.compile(r"^#{1,6}\s", re.M)


def chunk_text(text: str, max_words: int) -> list[str]:
    """Split text into chunks of at most `max_words`, at headings, then paragraphs."""
    sections = [s for s in _split_keep(text, HEADING) if s.strip()]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in (p for s in sections for p in _pieces(s, max_words)):
        n = len(piece.split())
        if current and size + n > max_words:
            chunks.append("".join(current).strip())
            current, size = [], 0
        current.append(piece)
        size += n
    if current:
        chunks.append("".join(current).strip())
    return [c for c in chunks if c]


def count_chunks(text: str) -> int:
    return len(chunk_text(text, CHUNK_WORDS))


def _split_keep(text: str, pattern: re.Pattern) -> list[str]:
    starts = [0] + [m.start() for m in pattern.finditer(text) if m.start() > 0]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def _pieces(section: str, max_words: int) -> list[str]:
    """A section that fits, or its paragraphs, or, for one huge paragraph, word windows."""
    if len(section.split()) <= max_words:
        return [section]
    out = []
    for para in re.split(r"(?<=\n)\s*\n", section):
        words = para.split()
        if len(words) <= max_words:
            out.append(para + "\n")
        else:
            out += [" ".join(words[i:i + max_words]) + "\n"
                    for i in range(0, len(words), max_words)]
    return out


@dataclass(frozen=True)
class VaultConfig:
    """Everything read from `.lenslink.toml` (or the built-in defaults)."""
    lenses: tuple[Lens, ...]
    exclude: tuple[str, ...] = ()
    heading: str = "Related notes"
    embedder: str = "minilm"
    embedder_options: tuple[tuple[str, Any], ...] = ()
    source: str = "defaults"
    writer: str | None = None  # the one machine that writes blocks (a synced vault)
    # not in repr (the fingerprint): labelling settings do not change how notes rank
    label: LabelSettings | None = field(default=None, repr=False)

    def lens(self, name: str | None) -> Lens:
        if name is None:
            return self.lenses[0]
        for lens in self.lenses:
            if lens.name == name:
                return lens
        raise ConfigError(f"unknown lens {name!r}; lenses: {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [lens.name for lens in self.lenses]

    @property
    def fingerprint(self) -> str:
        """Changes with any setting (lenses, top_k, min_score, ...): whether a daemon
        started earlier still ranks as this config says."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


PROJECT_FILTER = NoteFilter(globs=("projects/**", "project/**", "**/projects/**"),
                            tags=("project",), frontmatter=(("type", "project"),))
DEFAULT_LENSES = (
    Lens("topic", "What the note is about: title and text, every note."),
    Lens("project", "Which project a note belongs to: suggests project notes only.",
         prefix="Project this note belongs to: ", candidates=PROJECT_FILTER),
    Lens("daily", "Daily notes -> the projects and topics they mention, not other days.",
         source=NoteFilter(daily=True), candidates=NoteFilter(daily=False)),
)


def default_config() -> VaultConfig:
    """The settings of a vault without a .lenslink.toml."""
    return VaultConfig(lenses=DEFAULT_LENSES)


def load_config(vault: Path) -> VaultConfig:
    """Read `VAULT/.lenslink.toml`; built-in defaults when there is none."""
    path = Path(vault) / CONFIG_NAME
    if not path.exists():
        return default_config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from exc
    return parse_config(data, str(path))


def parse_config(data: Mapping[str, Any], where: str = CONFIG_NAME) -> VaultConfig:
    """Validate a config mapping; every mistake is one line naming the key and the fix."""
    _unknown(data, TOP_KEYS, where)
    lens_tables = data.get("lenses", {})
    if not isinstance(lens_tables, dict):
        raise ConfigError(f"{where}: [lenses] must be a table of lens tables")
    lenses = tuple(_parse_lens(name, spec, f"{where} [lenses.{name}]")
                   for name, spec in lens_tables.items()) or DEFAULT_LENSES
    exclude = _str_list(data.get("exclude", []), f"{where}: exclude")
    for g in exclude:
        _check_glob(g, f"{where}: exclude")
    heading = data.get("heading", "Related notes")
    if not isinstance(heading, str) or not heading.strip() or "\n" in heading:
        raise ConfigError(f"{where}: heading must be a one-line string")
    embedder = data.get("embedder", "minilm")
    if not isinstance(embedder, str):
        raise ConfigError(f"{where}: embedder must be a string such as \"minilm\"")
    options = data.get("embedder_options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: [embedder_options] must be a table")
    writer = data.get("writer")
    if writer is not None and (not isinstance(writer, str) or not writer.strip() or "\n" in writer):
        raise ConfigError(f"{where}: writer must be the name of the one computer that writes "
                          "blocks, such as \"my-laptop\" (see `lenslink status`)")
    label = LabelSettings(**_parse_chat(data["label"], f"{where} [label]", LABEL_KEYS,
                                        "answers whether you would link two notes")) \
        if "label" in data else None
    return VaultConfig(lenses=lenses, exclude=tuple(exclude), heading=heading.strip(),
                       embedder=embedder, embedder_options=tuple(sorted(options.items())),
                       source=where, writer=writer.strip() if writer else None, label=label)


def _parse_lens(name: str, spec: Any, where: str) -> Lens:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ConfigError(f"{where}: lens names use letters, digits, '-' and '_' only")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a table")
    _unknown(spec, LENS_KEYS, where)
    template = spec.get("template", DEFAULT_TEMPLATE)
    fields = tuple(_str_list(spec.get("fields", []), f"{where} fields"))
    if not isinstance(template, str):
        raise ConfigError(f"{where} template: must be a string")
    _check_template(template, fields, where)
    top_k, min_score = spec.get("top_k", 5), spec.get("min_score", DEFAULT_MIN_SCORE)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 100:
        raise ConfigError(f"{where} top_k: must be an integer from 1 to 100")
    if not isinstance(min_score, (int, float)) or not 0 <= min_score <= 1:
        raise ConfigError(f"{where} min_score: must be a number from 0 to 1")
    for key in ("description", "prefix"):
        if not isinstance(spec.get(key, ""), str):
            raise ConfigError(f"{where} {key}: must be a string")
    return Lens(name=name, description=spec.get("description", ""), template=template,
                prefix=spec.get("prefix", ""), fields=fields,
                source=_parse_filter(spec.get("source", {}), f"{where} source"),
                candidates=_parse_filter(spec.get("candidates", {}), f"{where} candidates"),
                top_k=top_k, min_score=float(min_score),
                rewrite=_parse_rewrite(spec["rewrite"], f"{where} rewrite") if "rewrite" in spec else None)


def _parse_rewrite(spec: Any, where: str) -> RewriteSettings:
    chat = _parse_chat(spec, where, REWRITE_KEYS, "rewrites")
    prompt = spec.get("prompt", DEFAULT_REWRITE_PROMPT)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{where} prompt: must be a non-empty string")
    return RewriteSettings(prompt=prompt.strip(), **chat)


def _parse_chat(spec: Any, where: str, keys: set[str], does: str) -> dict[str, Any]:
    """model, base_url, api_key_env, timeout and max_retries of a chat model's table
    (`[lenses.NAME.rewrite]`, `[label]`); `does` says what the model is for."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a table such as {{ model = \"gpt-4o-mini\" }}")
    _unknown(spec, keys, where)
    model = spec.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"{where} model: required, the chat model that {does}, "
                          "e.g. model = \"gpt-4o-mini\"")
    base_url = spec.get("base_url")
    if base_url is not None and (not isinstance(base_url, str)
                                 or not re.match(r"https?://[^/\s]+", base_url)):
        raise ConfigError(f"{where} base_url: must be an http(s) URL such as "
                          "\"http://localhost:11434/v1\"")
    key_env = spec.get("api_key_env", "OPENAI_API_KEY")
    if not isinstance(key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env):
        raise ConfigError(f"{where} api_key_env: must be the name of an environment variable "
                          "(never the key itself)")
    timeout = spec.get("timeout", 120.0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ConfigError(f"{where} timeout: must be a number of seconds above 0")
    retries = spec.get("max_retries", 5)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 20:
        raise ConfigError(f"{where} max_retries: must be an integer from 0 to 20")
    return {"model": model.strip(), "base_url": base_url.rstrip("/") if base_url else None,
            "api_key_env": key_env, "timeout": float(timeout), "max_retries": retries}


def _check_template(template: str, fields: tuple[str, ...], where: str) -> None:
    for m in re.finditer(r"\{([^{}]*)\}", template):
        name = m.group(1)
        base = name.split("[", 1)[0]
        if base not in PLACEHOLDERS:
            raise ConfigError(f"{where} template: unknown placeholder {{{name}}}; use "
                              + ", ".join("{%s}" % p for p in sorted(PLACEHOLDERS - {'fm'}))
                              + " or {fm[field]}")
        if base == "fm":
            fm = re.fullmatch(r"fm\[([^\]]+)\]", name)
            if not fm:
                raise ConfigError(f"{where} template: write frontmatter fields as {{fm[field]}}")
            if fm.group(1) not in fields:
                raise ConfigError(f"{where} template: add {fm.group(1)!r} to fields = [...] "
                                  "to use {" + name + "}")
    try:
        template.format_map({**{p: "" for p in PLACEHOLDERS}, "fm": _Blank()})
    except (ValueError, IndexError, KeyError) as exc:
        raise ConfigError(f"{where} template: {exc}; write literal braces as {{{{ }}}}") from exc


def _parse_filter(spec: Any, where: str) -> NoteFilter:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a table such as {{ globs = [\"daily/**\"] }}")
    _unknown(spec, FILTER_KEYS, where)
    globs = _str_list(spec.get("globs", []), f"{where} globs")
    exclude_globs = _str_list(spec.get("exclude_globs", []), f"{where} exclude_globs")
    for g in globs + exclude_globs:
        _check_glob(g, where)
    fm = spec.get("frontmatter", {})
    if not isinstance(fm, dict):
        raise ConfigError(f"{where} frontmatter: must be a table such as {{ status = \"active\" }}")
    daily = spec.get("daily")
    if daily is not None and not isinstance(daily, bool):
        raise ConfigError(f"{where} daily: must be true or false")
    return NoteFilter(globs=tuple(globs),
                      tags=tuple(t.lower().lstrip("#") for t in _str_list(spec.get("tags", []), f"{where} tags")),
                      frontmatter=tuple(sorted(fm.items())), daily=daily,
                      exclude_globs=tuple(exclude_globs),
                      exclude_tags=tuple(t.lower().lstrip("#") for t in
                                         _str_list(spec.get("exclude_tags", []), f"{where} exclude_tags")))


def _check_glob(glob: str, where: str) -> None:
    if not glob.strip() or glob.startswith("/") or "\\" in glob or "[" in glob:
        raise ConfigError(f"{where}: invalid glob {glob!r}; use vault-relative globs like \"daily/**\"")


def _str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: must be a list of strings")
    return value


def _unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}")

