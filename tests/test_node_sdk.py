"""The Vercel AI SDK (``ai`` + ``@ai-sdk/openai-compatible``, real Node, real packages)
against sfmock, as a user of that SDK runs it. The SDK refuses to download from a local
address on another origin (an SSRF guard, before any custom ``fetch``), and sends the API's
headers (the key) to a URL on the API's own origin. With the few lines of custom ``fetch``
the README documents it generates and downloads an image on sfmock's defaults (two
origins); with one origin (``image_port: same``) the README's other lines do it. Without
them it is refused either way: by its own guard, or by the image host for the key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from node_packages import node_packages_missing

from sfmock import Settings
from sfmock.server import FakeServer

NODE_DIR = Path(__file__).parent / "node"
NODE, NPM = shutil.which("node"), shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="node and npm are not installed (Debian: apt-get install nodejs npm; see docs/development.md)",
)


@pytest.fixture(scope="module")
def sdk() -> Path:
    missing = node_packages_missing("ai")  # .ci/run installs them; on a fresh clone, this does
    assert missing is None, missing
    return NODE_DIR / "generate.mjs"


def run_sdk(sdk: Path, server: FakeServer, fetch: str) -> dict[str, object]:
    assert NODE is not None
    env = {**os.environ, "SFMOCK_API_URL": server.api_url}
    command = [NODE, str(sdk), f"--fetch={fetch}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def assert_generated_and_downloaded(result: dict[str, object], server: FakeServer) -> None:
    assert result["ok"] is True and result["png"] is True and int(str(result["bytes"])) > 1000, result
    post, download = server.journal.entries()
    assert (post.method, post.status, post.authorization) == ("POST", 200, True)
    assert post.body["response_format"] == "b64_json"  # sfmock answers with a URL, as the real service does
    assert (download.method, download.status, download.authorization) == ("GET", 200, False)
    assert download.headers["host"] == server.image_base_url.removeprefix("http://")


def test_on_the_defaults_the_documented_fetch_generates_an_image(sdk: Path) -> None:
    with FakeServer(Settings(seed=1)) as server:
        assert server.image_base_url != server.url  # two origins: the default
        result = run_sdk(sdk, server, "images")
        assert_generated_and_downloaded(result, server)


def test_on_the_defaults_the_sdk_alone_refuses_the_local_image_origin(sdk: Path) -> None:
    with FakeServer(Settings(seed=1)) as server:
        result = run_sdk(sdk, server, "none")
        entries = server.journal.entries()
    assert result == {"ok": False, "error": "URL with IP address 127.0.0.1 is not allowed"}
    assert [e.method for e in entries] == ["POST"]  # the guard stops it before any download


def test_with_one_origin_the_other_documented_fetch_generates_an_image(sdk: Path) -> None:
    with FakeServer(Settings(seed=1, image_port="same")) as server:
        result = run_sdk(sdk, server, "strip")
        assert_generated_and_downloaded(result, server)


def test_with_one_origin_the_sdk_alone_sends_the_key_with_the_download_and_is_refused(sdk: Path) -> None:
    with FakeServer(Settings(seed=1, image_port="same")) as server:
        result = run_sdk(sdk, server, "none")
        download = server.journal.entries(path="/temporary/outputs/*")[0]
    assert result == {"ok": False, "error": "Forbidden"}
    assert download.status == 403 and download.authorization is True
    assert b"Only one auth mechanism" in download.raw_response
