"""Every credential form is scrubbed (issue 25), by one module, in the three places sfmock
writes requests down: the proxy's recordings, the journal and the page's feed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from sfmock import Settings, VirtualClock, create_app
from sfmock.scrubbing import _CUELESS, scrub_body
from sfmock.server import ServerThread, listen
from upstream import proxy_client

# each a credential in one form; none may reach a recording, the journal or the page
HEADER_SECRETS = {
    "api-key": "hdr-apikey-0001-secret",
    "x-api-key": "hdr-xapikey-0002-secret",
    "x-goog-api-key": "AIzaGoog0003secretvalue",
    "x-auth-token": "hdr-authtoken-0004-secret",
}
QUERY_SECRETS = {"api_key": "q-apikey-0005-secret", "key": "q-key-0006-secret", "token": "q-token-0007-secret"}
SIGNATURES = ["SIGplain0008", "SIGupper0009", "SIGsecurity0010", "SIGamz0011", "SIGencoded0012", "SIGrelative0013"]
PATH_KEY = "sk-pathkey0014secret"
TOKEN_FORM = "tok-tokenform-0015-secret"
BARE_KEY = "bare-key-0016-secret"
EVERY_SECRET = [*HEADER_SECRETS.values(), *QUERY_SECRETS.values(), *SIGNATURES, PATH_KEY, TOKEN_FORM, BARE_KEY]
QUERY = "&".join(f"{name}={value}" for name, value in QUERY_SECRETS.items()) + "&page=2"


def echoing_upstream() -> Starlette:
    """Answers every call with what the caller sent (as some services' errors do) and
    with image URLs whose signatures take every form a URL may have."""

    async def echo(request: Request) -> Response:
        urls = [
            f"https://sc-maas.oss-cn-shanghai.aliyuncs.com/o/a.png?OSSAccessKeyId=x&sig={SIGNATURES[0]}",
            f"HTTPS://S3.SILICONFLOW.CN/O/B.PNG?Expires=1&Signature={SIGNATURES[1]}",
            f"https://s3.siliconflow.cn/o/c.png?X-Amz-Security-Token={SIGNATURES[2]}&X-Amz-Signature={SIGNATURES[3]}",
            f"https%3A%2F%2Fs3.siliconflow.cn%2Fo%2Fd.png%3FX-Amz-Expires%3D3600%26X-Amz-Signature%3D{SIGNATURES[4]}",
            f"/default/outputs/e.png?X-Amz-Signature={SIGNATURES[5]}",
        ]
        said = {"headers": dict(request.headers), "query": request.url.query, "path": request.url.path}
        message = f"Invalid token: {request.headers.get('authorization')}"
        return JSONResponse({"message": message, "said": said, "images": [{"url": u} for u in urls]}, 401)

    return Starlette(routes=[Route("/{rest:path}", echo, methods=["GET", "POST"])])


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    sock = listen("127.0.0.1", 0)
    with ServerThread(app, sock).running():
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def assert_no_secret(text: str, where: str) -> None:
    found = [secret for secret in EVERY_SECRET if secret in text]
    assert not found, f"{where} holds {found}"


def test_recordings_hold_no_credential_in_any_form(tmp_path: Path) -> None:
    with serving(echoing_upstream()) as origin, proxy_client(origin, record=tmp_path) as client:
        client.post(f"/v1/images/generations?{QUERY}", json={"prompt": "x"}, headers=HEADER_SECRETS)
        client.get("/v1/models", headers={"Authorization": f"Token {TOKEN_FORM}"})
        client.get("/v1/user/info", headers={"Authorization": BARE_KEY})
        client.get(f"/v1/{PATH_KEY}/models")
    files = sorted(tmp_path.iterdir())
    assert len(files) == 4
    for file in files:
        assert_no_secret(file.name, f"the name {file.name}")
        assert_no_secret(file.read_text("utf-8"), file.name)
    recorded = json.loads(files[0].read_text("utf-8"))
    assert "page=2" in recorded["request"]["query"]  # what is no secret stays


def test_the_journal_and_the_page_show_no_credential() -> None:
    app = create_app(Settings(seed=1), clock=VirtualClock())
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        headers = {**HEADER_SECRETS, "Authorization": f"Bearer {PATH_KEY}"}
        body = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
        assert client.post(f"/v1/images/generations?{QUERY}", json=body, headers=headers).status_code == 200
        client.get("/v1/models", headers={"Authorization": f"Token {TOKEN_FORM}"})
        journal = client.get("/_sfmock/journal")
        feed = client.get("/_sfmock/ui/feed")
    assert journal.status_code == feed.status_code == 200
    assert_no_secret(journal.text, "the journal")
    assert_no_secret(feed.text, "the page's feed")
    assert "page=2" in journal.text


def test_a_body_seen_clean_is_still_scrubbed_of_the_key_that_comes_with_it() -> None:
    """A body found with no credential cue is remembered (the next one alike is not searched
    again); the key a request sends is looked for in it every time all the same."""
    clean = b'{"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse q1w2e3r4t5y6"}'
    assert scrub_body(clean) == clean
    assert scrub_body(clean) == clean  # remembered: the same answer
    assert b"q1w2e3r4t5y6" not in scrub_body(clean, ["q1w2e3r4t5y6"])  # a key of any shape, sent with it
    for index in range(600):  # many other clean bodies: what is remembered stays bounded
        scrub_body(b'{"prompt": "a lighthouse number %d"}' % index)
    assert len(_CUELESS) <= 256
    assert scrub_body(b'{"prompt": "a lighthouse", "api_key": "abcdefgh"}') == (
        b'{"prompt":"a lighthouse","api_key":"REDACTED"}'
    )
