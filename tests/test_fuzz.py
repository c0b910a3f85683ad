"""The local API under fuzzing: schemathesis generates requests from docs/openapi.json
(examples, boundary values, then random ones) against a live `lenslink serve` on a copy
of sample_vault. No request may get a 5xx, crash the daemon, or get a response that the
description does not allow (status code, content type); every error is JSON."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_helpers import ready_status, serve_process  # noqa: F401
from lenslink.daemon import load_token

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES = 25  # per operation and phase; CI-sized


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is a test dependency: pip install -e '.[test]'")
def test_fuzzing_the_api_finds_no_server_error(sample_vault, serve_process):
    daemon = serve_process(sample_vault, "--write", "manual")
    api = daemon.wait_serving()
    ready_status(api)
    result = subprocess.run(
        [str(SCHEMATHESIS), "run", str(ROOT / "docs/openapi.json"),
         "--url", f"http://127.0.0.1:{daemon.port}",
         "-H", f"Authorization: Bearer {load_token(create=False)}",
         "--max-examples", str(EXAMPLES), "--seed", "20261127",
         "--checks", "not_a_server_error,content_type_conformance,status_code_conformance"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated and int(generated.group(1)) >= 100, result.stdout[-2000:]
    print(f"\nschemathesis: {generated.group(0)} requests, no failure")
    assert daemon.proc.poll() is None  # still running
    assert api.get("/v1/health").status == 200
    # errors it provoked were JSON with a message (spot checks of what it sends)
    for method, path in (("TRACE", "/v1/status"), ("GET", "/v1/nope"), ("POST", "/v1/write")):
        resp = api.request(method, path, raw=b"{not json" if method == "POST" else None)
        assert 400 <= resp.status < 500 and resp.error["message"]
