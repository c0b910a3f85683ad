"""Write the managed block into notes: safe paths, link style, plan, diff and atomic apply.

Everything outside the block is kept byte for byte (BOM, CRLF, frontmatter, a missing
final newline). A write re-checks the file's hash just before swapping the new file in,
so an edit made after we read the note is never overwritten. On Linux the swap is an
atomic exchange (renameat2 RENAME_EXCHANGE): the version it displaced is checked once
more, and put back if someone saved the note in between; elsewhere it is `os.replace`.
"""

from __future__ import annotations

import ctypes
import difflib
import errno
import hashlib
import json
import os
import posixpath
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import quote

from lenslink.block import block_text, render_block, splice, split_lines
from lenslink.config import process_running
from lenslink.errors import BlockError, NoteError, ReadOnlyNote, UnsafePathError, WriteConflict
from lenslink.faults import crash_point

__all__ = [
    "LinkStyle", "WritePlan", "WriteResult", "apply", "count_names", "plan_write",
    "render_block", "safe_note_path", "write_block",
]

TEMP_SUFFIX = ".lenslink.tmp"
_LINK_FORMATS = ("shortest", "relative", "absolute")


def count_names(paths: Iterable[str]) -> dict[str, int]:
    """How many notes share each lower-cased file stem (Obsidian matches names case-blind)."""
    counts: dict[str, int] = {}
    for path in paths:  # string work, not PurePosixPath: 0.07 instead of 0.7 s at 100,000
        name = path.rsplit("/", 1)[-1]
        key = (name[:-3] if name[-3:].lower() == ".md" and len(name) > 3 else PurePosixPath(name).stem).lower()
        counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass(frozen=True)
class LinkStyle:
    """How Obsidian is set to write new links: wikilinks or Markdown, and which path form."""

    use_markdown_links: bool = False
    new_link_format: str = "shortest"

    @classmethod
    def from_vault(cls, root: Path) -> LinkStyle:
        """Read `.obsidian/app.json`; a missing or broken file (or odd values) means defaults."""
        try:
            settings = json.loads((Path(root) / ".obsidian" / "app.json").read_text("utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(settings, dict):
            return cls()
        markdown = settings.get("useMarkdownLinks", False)
        link_format = settings.get("newLinkFormat", "shortest")
        return cls(
            use_markdown_links=markdown if isinstance(markdown, bool) else False,
            new_link_format=link_format if link_format in _LINK_FORMATS else "shortest",
        )

    def format_link(
        self,
        target_path: str,
        source_path: str,
        unique: Mapping[str, int] | Callable[[str], bool],
    ) -> str:
        """A link from the note at `source_path` to `target_path` (vault-relative POSIX paths).

        `unique` is `count_names(all_paths)` or a callable telling whether a stem is unique;
        "shortest" falls back to the full path when the stem is ambiguous.
        """
        target = PurePosixPath(target_path)
        title = target.stem
        if self.new_link_format == "relative":
            path = posixpath.relpath(target_path, posixpath.dirname(source_path) or ".")
        elif self.new_link_format == "absolute" or not _is_unique(title, unique):
            path = target_path
        else:
            path = target.name
        # a name with # ^ [ ] | cannot be a [[wikilink]] (Obsidian would read a heading,
        # a block, an alias): a Markdown link with the path percent-encoded instead
        odd = _NOT_IN_WIKILINKS.search(path)
        if self.use_markdown_links or odd:
            label = re.sub(r"([\[\]])", r"\\\1", title)
            encoded = quote(path, safe="/") if odd or "%" in path else \
                path.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
            return f"[{label}]({encoded})"
        return f"[[{path[:-3] if path.endswith('.md') else path}]]"


_NOT_IN_WIKILINKS = re.compile(r"[#^\[\]|]")


def _is_unique(title: str, unique: Mapping[str, int] | Callable[[str], bool]) -> bool:
    if callable(unique):
        return bool(unique(title))
    return unique.get(title.lower(), 0) <= 1


def safe_note_path(root: Path, rel: str) -> Path:
    """The real (symlink-resolved) path of note `rel`, or UnsafePathError.

    Refuses absolute paths, `..`, empty or dot segments (`.obsidian`, `.trash`, hidden
    files), non-`.md` names, and anything whose real location is outside the real root.
    """
    if not rel or "\0" in rel:
        raise UnsafePathError(f"refusing {rel!r}: empty or invalid note path")
    if rel.startswith(("/", "\\")) or PureWindowsPath(rel).drive:
        raise UnsafePathError(f"refusing {rel!r}: note paths are relative to the vault")
    parts = re.split(r"[\\/]", rel)
    if ".." in parts:
        raise UnsafePathError(f"refusing {rel!r}: '..' leaves the vault")
    if any(not part or part.startswith(".") for part in parts):
        raise UnsafePathError(f"refusing {rel!r}: hidden or dot folders are not notes")
    if not rel.endswith(".md"):
        raise UnsafePathError(f"refusing {rel!r}: give a vault-relative path to a .md note")
    real_root = Path(root).resolve()
    real = (real_root / rel).resolve()
    try:
        inside = real.relative_to(real_root).parts
    except ValueError:
        raise UnsafePathError(f"refusing {rel!r}: it resolves outside the vault") from None
    if not inside or any(part.startswith(".") for part in inside) or real.suffix != ".md":
        raise UnsafePathError(f"refusing {rel!r}: it resolves to a hidden or non-.md file")
    return real


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _diff_lines(text: str) -> list[str]:
    # difflib needs "\n"-terminated lines; mark a missing final newline as git does.
    lines = split_lines(text)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


@dataclass(frozen=True)
class WritePlan:
    """A pending change to one note: what was read and what would be written."""

    rel: str
    path: Path
    original: bytes
    new: bytes
    mtime_ns: int
    size: int

    @property
    def original_sha256(self) -> str:
        return _sha256(self.original)

    @property
    def new_sha256(self) -> str:
        """Hash of the bytes we write, so a watcher can recognise its own write."""
        return _sha256(self.new)

    def diff(self) -> str:
        """A unified diff of the change, for --dry-run."""
        return "".join(
            difflib.unified_diff(
                _diff_lines(self.original.decode("utf-8")),
                _diff_lines(self.new.decode("utf-8")),
                fromfile=f"a/{self.rel}",
                tofile=f"b/{self.rel}",
            )
        )


def plan_write(root: Path, rel: str, block: str, guard=None) -> WritePlan | None:
    """Read note `rel` and splice `block` into it; None when nothing would change.

    Raises NoteError (unreadable, not UTF-8) or BlockError (damaged block), never guessing.
    `guard(current block text)` may raise to refuse replacing the block there now.
    """
    path = safe_note_path(root, rel)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise NoteError(f"{rel}: not a regular file")
            data = handle.read()
    except FileNotFoundError:
        raise NoteError(f"{rel}: note not found") from None
    except OSError as error:
        raise NoteError(f"{rel}: cannot read ({error.strerror or error})") from None
    if not info.st_mode & stat.S_IWUSR:
        raise ReadOnlyNote(f"{rel}: the note is read-only, so lenslink leaves it alone")
    try:
        text = data.decode("utf-8")  # a BOM stays in the text as U+FEFF
    except UnicodeDecodeError:
        raise NoteError(f"{rel}: not valid UTF-8, so lenslink will not rewrite it") from None
    if text.encode("utf-8") != data:
        raise NoteError(f"{rel}: bytes do not round-trip through UTF-8; not rewriting it")
    try:
        new_text = splice(text, block)
        current = block_text(text)
    except BlockError as error:
        raise BlockError(f"{rel}: {error}") from None
    if new_text == text:
        return None
    if guard is not None and current is not None:
        guard(current)
    return WritePlan(rel, path, data, new_text.encode("utf-8"), info.st_mtime_ns, info.st_size)


def apply(plan: WritePlan) -> None:
    """Write the plan atomically; WriteConflict if the note changed since it was read.

    The new bytes go to a hidden temp file beside the note (`.<name>.*.lenslink.tmp`),
    are fsynced and get the note's permission bits; then the note is re-read and compared
    by hash, and the temp file is swapped in (see the module docstring). The temp file
    never outlives a failure; one left by a killed process is removed by the next full
    sync (`remove_stale_temp_files`).
    """
    folder, name = plan.path.parent, plan.path.name
    try:
        # the writer's pid in the name: a temp file of a process still running is its own
        handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.{os.getpid()}-", suffix=TEMP_SUFFIX)
    except OSError as error:
        raise NoteError(f"{plan.rel}: cannot write ({error.strerror or error})") from None
    swapped = False  # once swapped in, `temp` holds what was displaced: never delete that
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(plan.new)
            out.flush()
            os.fsync(out.fileno())
        crash_point("write.temp_written")
        try:
            os.chmod(temp, stat.S_IMODE(os.stat(plan.path).st_mode))
            current = plan.path.read_bytes()
        except FileNotFoundError:
            raise WriteConflict(f"{plan.rel}: note vanished since it was read") from None
        if _sha256(current) != plan.original_sha256:
            raise WriteConflict(f"{plan.rel}: note changed since it was read; not written")
        if _exchange(temp, str(plan.path)):
            swapped = True
            # `temp` now holds what we displaced: someone's save in the last instant?
            if _sha256(Path(temp).read_bytes()) != plan.original_sha256:
                raise WriteConflict(f"{plan.rel}: note changed while it was written; not written")
            crash_point("write.swapped")
            swapped = False  # what we displaced is the note as we read it: ours may go
            os.unlink(temp)
        else:
            os.replace(temp, plan.path)
    except BaseException as error:
        try:
            if swapped:  # put back what we displaced (theirs), whatever went wrong
                _exchange(temp, str(plan.path))
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise NoteError(f"{plan.rel}: cannot write ({error.strerror or error})") from error
        raise
    _fsync_folder(folder)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if os.name == "posix" else None


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux renameat2); False where that is not supported."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


STALE_TEMP_S = 60.0  # a write holds its temp file for milliseconds
_WRITER = re.compile(r"\.(\d+)-[^.]*" + re.escape(TEMP_SUFFIX) + "$")


def remove_stale_temp_files(root: Path, found: Iterable[str]) -> list[Path]:
    """Delete temp files a killed lenslink left beside notes (`.<name>.<pid>-*.lenslink.tmp`),
    as the vault scan `found` them (vault-relative; `scan_vault(hidden_suffix=...)`); not
    one of another process still running that is younger than STALE_TEMP_S (being written)."""
    removed = []
    for rel in found:
        path = Path(root) / rel
        try:
            if _writer_alive(path.name) and time.time() - path.stat().st_mtime < STALE_TEMP_S:
                continue
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def _writer_alive(name: str) -> bool:
    """Whether the temp file `name` was made by another process that is still running."""
    found = _WRITER.search(name)
    return found is not None and int(found[1]) != os.getpid() and process_running(int(found[1]))


def _fsync_folder(folder: Path) -> None:
    # Makes the rename durable on POSIX; not possible (nor needed) everywhere.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class WriteResult:
    """Outcome of `write_block`: status is "written", "unchanged" or "diff" (dry run)."""

    rel: str
    status: str
    diff: str = ""
    sha256: str = ""  # hash of the bytes written (status "written"), to spot our own write


def write_block(root: Path, rel: str, block: str, dry_run: bool = False, guard=None) -> WriteResult:
    """Put `block` into note `rel` (\"\" removes it); with dry_run only return the diff.
    `guard`: see `plan_write`."""
    plan = plan_write(root, rel, block, guard)
    if plan is None:
        return WriteResult(rel, "unchanged")
    if dry_run:
        return WriteResult(rel, "diff", plan.diff())
    apply(plan)
    return WriteResult(rel, "written", sha256=plan.new_sha256)
