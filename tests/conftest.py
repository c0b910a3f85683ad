"""Shared fixtures. Helpers live in sibling modules; register their fixtures here.

pytest's default ("prepend") import mode puts tests/ on sys.path, so sibling
modules import by their plain names, here and in test files.
"""

from openai_server import keyless_chat, openai_server  # noqa: F401

import shutil
from pathlib import Path

import pytest

from fake_embedder import FakeEmbedder
from lenslink import embedders

SAMPLE_VAULT = Path(__file__).resolve().parent.parent / "sample_vault"


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory, monkeypatch):
    """No test may touch the real user data folder: point LENSLINK_DATA_DIR at a tmp dir."""
    monkeypatch.setenv("LENSLINK_DATA_DIR", str(tmp_path_factory.mktemp("lenslink-data")))
    monkeypatch.delenv("LENSLINK_DB", raising=False)
    monkeypatch.delenv("LENSLINK_EMBEDDER", raising=False)


def _new_fake(**options):
    return FakeEmbedder()


# Always available, so `--embedder fake` works in any test; a fresh instance per use.
embedders.register("fake", _new_fake)


@pytest.fixture
def fake_embedder():
    """A fresh counting fake, registered as "fake": every `get_embedder("fake")` in this
    test returns this very instance, so its counters see every index run."""
    fake = FakeEmbedder()
    embedders.register("fake", lambda **options: fake)
    yield fake
    embedders.register("fake", _new_fake)


@pytest.fixture
def sample_vault(tmp_path):
    """A private copy of sample_vault/."""
    return Path(shutil.copytree(SAMPLE_VAULT, tmp_path / "sample_vault"))


def write_notes(root: Path, notes: dict) -> Path:
    """Write {relative path: str or bytes} under root (folders created)."""
    for rel, content in notes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def tiny_vault(tmp_path):
    """Builder: `tiny_vault({"a.md": "text", ...}, config="...toml...")` -> vault folder."""
    def build(notes: dict, config: str | None = None, name: str = "vault") -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        write_notes(root, notes)
        if config is not None:
            (root / ".lenslink.toml").write_text(config, encoding="utf-8")
        return root

    return build
