"""Shared fixtures. Helpers live in sibling modules; register their fixtures here.

pytest's default ("prepend") import mode puts tests/ on sys.path, so sibling
modules import by their plain names, here and in test files.
"""

from openai_server import openai_server  # noqa: F401
