"""The Vercel AI SDK (``ai`` + ``@ai-sdk/openai-compatible``, real Node, real packages)
against sfmock, as a user of that SDK runs it: with the few lines of custom ``fetch`` the
README documents, it generates and downloads an image; without them it sends the API key
along with the pre-signed download and is refused, as object storage refuses it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sfmock import Settings
from sfmock.server import FakeServer

NODE_DIR = Path(__file__).parent / "node"
NODE, NPM = shutil.which("node"), shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None, reason="node and npm are not installed (.ci/run installs them)"
)


@pytest.fixture(scope="module")
def sdk() -> Path:
    if not (NODE_DIR / "node_modules" / "ai").is_dir():  # .ci/run installs them; a developer may not have
        assert NPM is not None
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True, timeout=300)
    return NODE_DIR / "generate.mjs"


def run_sdk(sdk: Path, server: FakeServer, *flags: str) -> dict[str, object]:
    assert NODE is not None
    env = {**os.environ, "SFMOCK_API_URL": server.api_url}
    done = subprocess.run([NODE, str(sdk), *flags], env=env, capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_vercel_ai_sdk_generates_an_image_with_the_documented_fetch(sdk: Path) -> None:
    with FakeServer(Settings(seed=1)) as server:
        result = run_sdk(sdk, server)
        entries = server.journal.entries()
    assert result["ok"] is True and result["png"] is True and int(str(result["bytes"])) > 1000, result
    post, download = entries
    assert (post.method, post.status, post.authorization) == ("POST", 200, True)
    assert post.body["response_format"] == "b64_json"  # sfmock answers with a URL, as the real service does
    assert (download.method, download.status, download.authorization) == ("GET", 200, False)


def test_without_it_the_sdk_sends_the_key_with_the_download_and_is_refused(sdk: Path) -> None:
    with FakeServer(Settings(seed=1)) as server:
        result = run_sdk(sdk, server, "--no-custom-fetch")
        download = server.journal.entries(path="/temporary/outputs/*")[0]
    assert result == {"ok": False, "error": "Forbidden"}
    assert download.status == 403 and download.authorization is True
    assert b"Only one auth mechanism" in download.raw_response
