"""The "Image URLs" list of the facts file."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fidelity_helpers import KOLORS, START, fake, generate

from sfmock import ConfigError, Settings, VirtualClock, check_response, load_settings
from sfmock.service.signing import UrlSigner


def image_url(client: object, **fields: object) -> str:
    answer = generate(client, **{**KOLORS, **fields})  # type: ignore[arg-type]
    assert answer.status_code == 200
    return str(answer.json()["images"][0]["url"])


def test_urls_use_the_temporary_outputs_path_by_default() -> None:
    """Fact "Image URLs" bullet "by Sep 2026 the path is /temporary/outputs/... on the same
    host" [seen]: the default ``image_prefix``; the image host serves it there."""
    with fake() as client:
        url = image_url(client)
        assert urlsplit(url).path.startswith("/temporary/outputs/")
        assert client.get(url).status_code == 200
        assert client.get(url.replace("/temporary/outputs/", "/default/outputs/")).status_code == 404


def test_the_image_prefix_is_a_setting_and_the_route_follows_it(tmp_path: Path) -> None:
    """Fact "Image URLs" bullets "since ~Nov 2025: .../default/outputs/<id>.png" and "by Sep
    2026 .../temporary/outputs/" [seen]: the path moved, so it is the ``image_prefix``
    setting; URLs, the download route, faults on the store and the conformance check follow."""
    path = tmp_path / "c.yaml"
    path.write_text("image_prefix: /default/outputs/\n")
    settings = load_settings(path)
    with fake(settings) as client:
        url = image_url(client)
        assert urlsplit(url).path.startswith("/default/outputs/")
        png = client.get(url)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert client.get(url.replace("/default/outputs/", "/temporary/outputs/")).status_code == 404
        faulted = client.get(url, headers={"X-Sfmock-Fault": "503"})
        assert faulted.status_code == 503 and b"<Code>SlowDown</Code>" in faulted.content
        check_response("GET", urlsplit(url).path, 200, png.headers, png.content, image_prefix="/default/outputs/")


@pytest.mark.parametrize("prefix", ["/v1/outputs/", "/_sfmock/x/", "temporary/outputs/", "/temporary/outputs", "/a b/"])
def test_an_image_prefix_that_would_shadow_the_api_is_refused(tmp_path: Path, prefix: str) -> None:
    """Fact "Image URLs" bullet "/temporary/outputs/" [seen]: the prefix is a path of its own,
    never one of the API's or the control API's."""
    path = tmp_path / "c.yaml"
    path.write_text(f"image_prefix: '{prefix}'\n")
    with pytest.raises(ConfigError, match="image_prefix"):
        load_settings(path)


def test_urls_are_presigned_s3_style_for_one_hour() -> None:
    """Facts "Image URLs": "Valid for one hour" [doc]; "since ~Nov 2025 ... X-Amz-Algorithm=
    AWS4-HMAC-SHA256&X-Amz-Credential=...%2Fcn-shanghai-1%2Fs3%2Faws4_request..." [seen];
    "Expires - created is 3600 s in recorded payloads" [seen]."""
    clock = VirtualClock(START)
    with fake(clock=clock) as client:
        answer = generate(client, **KOLORS)
        query = {k: v[0] for k, v in parse_qs(urlsplit(answer.json()["images"][0]["url"]).query).items()}
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert query["X-Amz-Credential"].endswith("/cn-shanghai-1/s3/aws4_request")
        assert query["X-Amz-Expires"] == "3600" and query["X-Amz-SignedHeaders"] == "host"
        assert query["X-Amz-Date"] == "20260101T000000Z" and answer.json()["created"] == int(START)
        url = answer.json()["images"][0]["url"]
        clock.advance(3599)
        assert client.get(url).status_code == 200
        clock.advance(1)
        expired = client.get(url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content


def test_downloads_go_without_authorization_and_refuse_it() -> None:
    """Facts "Image URLs": "downloaded without an Authorization header" [seen]; "Downloading
    a pre-signed URL with the API's Authorization header as well fails (403)" [seen]."""
    with fake() as client:
        url = image_url(client)
        assert client.get(url).status_code == 200
        both = client.get(url, headers={"Authorization": "Bearer sk-fidelity-0123456789"})
    assert both.status_code == 403 and b"Only one auth mechanism allowed" in both.content


def test_store_refusals_follow_s3() -> None:
    """Fact "Image URLs" paragraph "An expired pre-signed URL ... 403 AccessDenied Request has
    expired [guess]; a tampered signature 403 SignatureDoesNotMatch; a missing object 404
    NoSuchKey": the guess's timing is the ``url_ttl`` setting."""
    clock = VirtualClock(START)
    with fake(Settings(seed=3, url_ttl=60, signing_key="sk-fidelity-signing"), clock=clock) as client:
        url = image_url(client)
        signer = UrlSigner("sk-fidelity-signing", ttl=60)
        unknown = "not-an-image.png"
        missing = client.get(f"/temporary/outputs/{unknown}?{urlencode(signer.sign(unknown, clock.now()))}")
        assert missing.status_code == 404 and b"<Code>NoSuchKey</Code>" in missing.content
        tampered = client.get(url[:-4] + ("0000" if not url.endswith("0000") else "1111"))
        assert tampered.status_code == 403 and b"SignatureDoesNotMatch" in tampered.content
        clock.advance(60)
        expired = client.get(url)
        assert expired.status_code == 403
        for element in (b"<Code>AccessDenied</Code>", b"Request has expired", b"<Expires>", b"<ServerTime>"):
            assert element in expired.content


def test_urls_may_point_at_another_host() -> None:
    """Fact "Image URLs" "pre-signed object-storage URLs on a different host than the API"
    [seen]: ``public_url`` names that host."""
    with fake(public_url="https://s3.example.test") as client:
        assert image_url(client).startswith("https://s3.example.test/temporary/outputs/")
