"""One error hierarchy: every message is a single line a user can act on."""


class LenslinkError(Exception):
    """Root of every error lenslink raises on purpose."""


class ConfigError(LenslinkError):
    """The vault's `.lenslink.toml` or a command-line option is invalid."""


class NoteError(LenslinkError):
    """A note cannot be read (vanished, unreadable, binary, too large)."""


class ReadOnlyNote(NoteError):
    """The note's file is read-only: lenslink leaves it alone (a skip, not a failure)."""


class BlockError(LenslinkError):
    """A note's managed block is ambiguous or damaged, so it is never written over."""


class BlockEdited(BlockError):
    """The managed block was edited by hand: lenslink leaves it until told to take it over."""


class EmbedderError(LenslinkError):
    """An embedder is unknown, misconfigured or failed."""


class RewriteError(LenslinkError):
    """A lens's LLM rewrite (before embedding) is misconfigured or its endpoint failed."""


class RewriteRejected(RewriteError):
    """The model would not rewrite one text (rejected request, empty reply); others go on."""


class LabelError(LenslinkError):
    """`lenslink label`'s chat model is misconfigured or its endpoint failed."""


class LabelRejected(LabelError):
    """The model would not judge one pair (rejected request, empty reply); others go on."""


class StoreError(LenslinkError):
    """The SQLite store is unusable or does not match the vault/embedder."""


class WriteConflict(LenslinkError):
    """A note changed since it was read; the write was refused."""


class UnsafePathError(LenslinkError):
    """A path leaves the vault, is not Markdown, or is otherwise refused."""


class NotFound(LenslinkError):
    """A note or lens asked for does not exist."""


class NotEmbedded(LenslinkError):
    """A note's text under a lens has no vector yet: its block would lack that lens."""


class NotReady(LenslinkError):
    """The daemon has no index to answer from yet (first sync still running)."""
