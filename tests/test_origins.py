"""Two origins, as the real service has: the API on one, its images (the object store) on
another. A client that keeps its key for the API's origin works by default; one that sends
the key to the image host is refused as object storage refuses it; one origin stays a
setting. Signed URLs verify on either socket, sessions follow the URL, and the client checks
(in-process, on the live socket, and `sfmock check`) record the downloads on the image origin."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Generator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import KEY, contract_hook
from sfmock import RemoteFake, Settings
from sfmock.cli import main
from sfmock.server import FakeServer
from sfmock.testing.checks import check_client
from sfmock.testing.harness import ClientContext, Harness, Options
from sfmock.testing.programs import ProgramSetup, run_program

GEN = "/images/generations"
BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 3}
TWO_AUTH = b"Only one auth mechanism allowed"


class ApiOriginBearer(httpx.Auth):
    """The key for the API's origin only, as browsers' credential rules and some SDKs keep it."""

    def __init__(self, api_url: str, key: str) -> None:
        self.origin = _origin(api_url)
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(str(request.url)) == self.origin:
            request.headers["Authorization"] = f"Bearer {self.key}"
        yield request


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def generate_and_download(api_url: str, client: httpx.Client) -> tuple[str, httpx.Response]:
    """The client under test: the URL the answer names, downloaded by the same client."""
    answer = client.post(f"{api_url}{GEN}", json=BODY).raise_for_status()
    url = answer.json()["images"][0]["url"]
    return url, client.get(url)


def test_by_default_images_have_an_origin_of_their_own() -> None:
    with FakeServer() as fake:
        assert _origin(fake.image_base_url) != _origin(fake.url)
        assert fake.settings.image_base_url == fake.image_base_url
        with httpx.Client(auth=ApiOriginBearer(fake.api_url, KEY), event_hooks={"response": [contract_hook]}) as http:
            url, download = generate_and_download(fake.api_url, http)
        assert url.startswith(f"{fake.image_base_url}/temporary/outputs/")
        assert download.status_code == 200 and download.content.startswith(b"\x89PNG")
        post, get = fake.journal.entries()
        assert (post.authorization, get.authorization, get.status) == (True, False, 200)
        assert get.headers["host"] == fake.image_base_url.removeprefix("http://")  # it came to the image socket


def test_a_client_that_keeps_its_key_for_the_api_origin_fails_with_one_origin() -> None:
    # the reason for the default: on one origin the same client sends its key with the download
    with FakeServer(image_port="same") as fake:
        assert fake.image_base_url == fake.url
        with httpx.Client(auth=ApiOriginBearer(fake.api_url, KEY), event_hooks={"response": [contract_hook]}) as http:
            url, download = generate_and_download(fake.api_url, http)
    assert url.startswith(f"{fake.url}/temporary/outputs/")
    assert download.status_code == 403 and TWO_AUTH in download.content


def test_a_client_that_sends_its_key_to_the_image_origin_is_refused() -> None:
    with (
        FakeServer() as fake,
        httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, event_hooks={"response": [contract_hook]}) as http,
    ):
        _, download = generate_and_download(fake.api_url, http)
    assert download.status_code == 403 and TWO_AUTH in download.content
    assert b"<Code>InvalidArgument</Code>" in download.content


def test_signed_urls_verify_on_either_socket_and_in_another_process_with_the_key() -> None:
    # stateless: the signature, not the socket or the process, makes a URL good
    settings = Settings(seed=1, signing_key="a-shared-signing-key-0123")
    with FakeServer(settings) as fake, FakeServer(settings) as twin:
        with httpx.Client(auth=ApiOriginBearer(fake.api_url, KEY)) as http:
            url, _ = generate_and_download(fake.api_url, http)
        path = url.removeprefix(fake.image_base_url)
        for base in (fake.image_base_url, fake.url, twin.image_base_url, twin.url):
            assert httpx.get(base + path).status_code == 200, base
        assert httpx.get(fake.image_base_url + path[:-4] + "0000").status_code == 403  # tampered


def test_sessions_follow_the_url_to_the_image_origin() -> None:
    with FakeServer() as fake:
        remote = RemoteFake(fake.url).for_session("job-7")
        assert remote.image_base_url == fake.image_base_url  # from the health call
        with remote.client(headers={"Authorization": f"Bearer {KEY}"}) as api:
            url = api.post(GEN, json=BODY).json()["images"][0]["url"]
        assert url.startswith(fake.image_base_url) and url.endswith("&X-Sfmock-Session=job-7")
        assert httpx.get(url).status_code == 200  # no header: the URL names the session
        assert [e["method"] for e in remote.journal.entries()] == ["POST", "GET"]
        assert len(fake.journal) == 0  # nothing in the default session


def test_the_in_process_transport_has_an_image_host_of_its_own() -> None:
    with FakeServer() as fake, fake.transport() as transport:
        auth = ApiOriginBearer("http://sfmock.test/v1", KEY)
        with httpx.Client(transport=transport, auth=auth, event_hooks={"response": [contract_hook]}) as http:
            url, download = generate_and_download("http://sfmock.test/v1", http)
            keyed = http.get(url, headers={"Authorization": f"Bearer {KEY}"})
    assert url.startswith("http://images.sfmock.test/temporary/outputs/") and download.status_code == 200
    assert keyed.status_code == 403 and TWO_AUTH in keyed.content


def test_the_in_process_transport_with_one_origin() -> None:
    with FakeServer(image_port="same") as fake, fake.transport() as transport:
        with httpx.Client(transport=transport, auth=ApiOriginBearer("http://sfmock.test/v1", KEY)) as http:
            url, download = generate_and_download("http://sfmock.test/v1", http)
    assert url.startswith("http://sfmock.test/temporary/outputs/") and download.status_code == 403


def test_public_urls_name_the_origins() -> None:
    with FakeServer(image_public_url="https://s3.example.test/bucket") as fake:
        url = httpx.post(f"{fake.api_url}{GEN}", json=BODY, headers={"Authorization": f"Bearer {KEY}"}).json()
    assert url["images"][0]["url"].startswith("https://s3.example.test/bucket/temporary/outputs/")
    # behind a proxy that knows only the API, public_url alone names the images too
    assert Settings(public_url="https://fake.example.test").image_base_url == "https://fake.example.test"
    both = Settings(public_url="https://fake.example.test", image_public_url="https://s3.example.test")
    assert (both.base_url, both.image_base_url) == ("https://fake.example.test", "https://s3.example.test")


def test_the_default_image_port_is_the_api_port_plus_one() -> None:
    assert Settings().image_base_url == "http://127.0.0.1:8001"
    assert Settings(port=9000, image_port=9500).image_base_url == "http://127.0.0.1:9500"
    assert Settings(port=0).image_socket_port == 0  # a free one, as the API's
    assert Settings(image_port="same").image_base_url == Settings().base_url


def test_a_taken_default_image_port_says_how_to_choose(capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(50):  # a taken port whose predecessor is free: the API's port, the image's taken
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            try:
                socket.create_server(("127.0.0.1", port - 1)).close()
            except OSError:
                continue
            assert main(["serve", "--port", str(port - 1)]) == 2
            break
    err = capsys.readouterr().err
    assert f"--image-port: cannot listen on 127.0.0.1:{port}" in err and "--image-port same" in err


# --- the client checks record downloads on the image origin ---


def _live_client(ctx: ClientContext) -> bytes:
    """A client on the live socket, keeping its key for the API's origin."""
    with httpx.Client(auth=ApiOriginBearer(ctx.live_base_url, ctx.api_key), timeout=10) as http:
        _, download = generate_and_download(ctx.live_base_url, http)
        return download.raise_for_status().content


def test_the_live_socket_records_the_download_on_the_image_origin() -> None:
    harness = Harness(Settings(seed=0), "sk-origins-0123456789", 600)
    options = Options(
        request=dict(BODY), max_attempts=6, min_attempts=3, returns_image=True, max_total_wait=600, strict=False
    )
    try:
        run = harness.run(_live_client, [], 0, options)
    finally:
        harness.close()
    assert run.error is None, run.error
    post, download = run.exchanges
    assert (post.method, download.method, download.status) == ("POST", "GET", 200)
    assert _origin(post.url) != _origin(download.url) and "authorization" not in download.request_headers


@pytest.mark.parametrize("single", [False, True], ids=["two-origins", "one-origin"])
def test_check_client_verdicts_follow_the_origins(single: bool) -> None:
    settings = Settings(image_port="same") if single else None
    if single:  # the origin-bound key goes with the download: caught by `downloads`
        with pytest.raises(AssertionError, match=r"\[downloads\]"):
            check_client(_live_client, settings=settings, schedule=[], invariants=["downloads"])
    else:
        report = check_client(_live_client, settings=settings, schedule=[], invariants=["downloads"])
        assert report.outcomes


def test_sfmock_check_records_the_download_on_the_image_origin(tmp_path: Path) -> None:
    program = tmp_path / "client.py"
    program.write_text(
        "import json, os, urllib.request\n"
        "api = os.environ['SILICONFLOW_BASE_URL']\n"
        "request = urllib.request.Request(api + '/images/generations', data=os.environ['SFMOCK_REQUEST'].encode(),\n"
        "    headers={'Authorization': 'Bearer ' + os.environ['SILICONFLOW_API_KEY']})\n"
        "url = json.load(urllib.request.urlopen(request))['images'][0]['url']\n"
        "open(os.environ['SFMOCK_OUTPUT'], 'wb').write(urllib.request.urlopen(url).read())\n"
    )
    done = run_program(ProgramSetup(command=(sys.executable, str(program))), [])
    assert done.status == 0 and done.got_image, done.stderr
    post, download = done.run.exchanges
    assert _origin(post.url) != _origin(download.url) and download.status == 200
    assert json.loads(post.request_body)["model"] == "Kwai-Kolors/Kolors"


def test_the_control_api_expects_the_image_public_url_host_too() -> None:
    # DNS rebinding: a Host named by neither the bound address nor a public URL is refused
    with FakeServer(image_public_url="http://images.fake.test:9") as fake:
        health = f"{fake.image_base_url}/_sfmock/health"
        assert httpx.get(health, headers={"Host": "images.fake.test:9"}).status_code == 200
        assert httpx.get(health, headers={"Host": "elsewhere.test"}).status_code == 403
