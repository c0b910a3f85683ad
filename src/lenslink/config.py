"""Where things live: the per-vault database outside the vault, resolved once."""
from __future__ import annotations

import hashlib
import os
import re
import socket
from pathlib import Path

import platformdirs

from .errors import ConfigError

DATA_ENV = "LENSLINK_DATA_DIR"


def data_dir() -> Path:
    """lenslink's own folder (databases, token): $LENSLINK_DATA_DIR or the user data dir."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path(platformdirs.user_data_dir("lenslink", appauthor=False))


def machine_name() -> str:
    """This computer's name, as `writer` in .lenslink.toml names it ($LENSLINK_MACHINE
    overrides the host name, e.g. for two daemons on one computer)."""
    return os.environ.get("LENSLINK_MACHINE") or socket.gethostname()


def process_running(pid: int) -> bool:
    """Whether a process with this id runs on this computer (another user's counts; an id
    too large to ask about is not ruled out)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def vault_root(vault: str | os.PathLike) -> Path:
    """The vault folder, resolved; a clear error when it is not a folder."""
    root = Path(vault).expanduser()
    if not root.is_dir():
        raise ConfigError(f"vault {str(vault)!r} is not a folder")
    return root.resolve()


def default_db_path(root: Path) -> Path:
    """A per-vault database outside the vault, so sync tools never touch it."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", root.name).strip("-")[:40] or "vault"
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return data_dir() / "vaults" / f"{slug}-{digest}.db"


def db_path(root: Path, override: str | os.PathLike | None = None) -> Path:
    """--db flag > $LENSLINK_DB > the default location."""
    chosen = override or os.environ.get("LENSLINK_DB")
    return Path(chosen).expanduser().resolve() if chosen else default_db_path(root)


def lock_path(db: Path) -> Path:
    """The file a daemon serving the database `db` locks and announces itself in."""
    return db.with_suffix(db.suffix + ".lock")
