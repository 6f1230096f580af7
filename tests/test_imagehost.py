"""The image host: downloads, one-hour expiry on the virtual clock, refusals in S3 XML."""

from __future__ import annotations

import io
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.testclient import TestClient

from sfmock import Settings, VirtualClock, create_app
from sfmock.service.signing import UrlSigner

Post = Callable[..., httpx.Response]


@pytest.fixture
def image_url(generate: Post) -> str:
    body = generate(model="Kwai-Kolors/Kolors", prompt="cat", image_size="960x1280").json()
    return str(body["images"][0]["url"])


def s3_error(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/xml"
    root = ElementTree.fromstring(response.content)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


def test_download_is_a_real_png_without_authorization(client: TestClient, image_url: str) -> None:
    response = client.get(image_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert "x-amz-request-id" in response.headers
    with Image.open(io.BytesIO(response.content)) as picture:
        picture.load()
        assert picture.format == "PNG" and picture.size == (960, 1280)
        assert len(picture.convert("RGB").getcolors(maxcolors=4096) or []) > 1  # a picture, not a blank


def test_head_answers_like_get_without_a_body(client: TestClient, image_url: str) -> None:
    head, get = client.head(image_url), client.get(image_url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


def test_url_lives_exactly_url_ttl_seconds(client: TestClient, clock: VirtualClock, image_url: str) -> None:
    clock.advance(3599)
    assert client.get(image_url).status_code == 200
    clock.advance(1)
    expired = client.get(image_url)
    assert expired.status_code == 403
    error = s3_error(expired)
    assert error["Code"] == "AccessDenied" and error["Message"] == "Request has expired"
    assert error["Expires"] == "2026-01-01T01:00:00Z" and error["ServerTime"] == "2026-01-01T01:00:00Z"
    assert error["RequestId"] == expired.headers["x-amz-request-id"]


def test_url_ttl_setting(clock: VirtualClock) -> None:
    with TestClient(create_app(Settings(url_ttl=60), clock=clock)) as client:
        body = client.post(
            "/v1/images/generations",
            json={"model": "Kwai-Kolors/Kolors", "prompt": "x"},
            headers={"Authorization": "Bearer k"},
        ).json()
        url = body["images"][0]["url"]
        clock.advance(59)
        assert client.get(url).status_code == 200
        clock.advance(1)
        assert s3_error(client.get(url))["Message"] == "Request has expired"


def test_url_from_the_future_is_not_valid_yet(client: TestClient, clock: VirtualClock, image_url: str) -> None:
    clock.set(clock.now() - 3600)
    response = client.get(image_url)
    assert response.status_code == 403 and s3_error(response)["Message"] == "Request is not valid yet"


@pytest.mark.parametrize("param", ["X-Amz-Signature", "X-Amz-Date", "X-Amz-Expires"])
def test_tampering_breaks_the_signature(client: TestClient, image_url: str, param: str) -> None:
    parts = urlsplit(image_url)
    query = dict(pair.split("=", 1) for pair in parts.query.split("&"))
    # a changed value that is still well formed (same day, within a week): only the signature can tell
    date = query["X-Amz-Date"][:9] + "235959Z"
    changed = {"X-Amz-Signature": "0" * 64, "X-Amz-Date": date, "X-Amz-Expires": "604800"}
    query[param] = changed[param]
    response = client.get(f"{parts.path}?{'&'.join(f'{k}={v}' for k, v in query.items())}")
    assert response.status_code == 403 and s3_error(response)["Code"] == "SignatureDoesNotMatch"


def test_another_object_name_breaks_the_signature(client: TestClient, image_url: str) -> None:
    parts = urlsplit(image_url)
    other = parts.path.replace("960x1280", "1280x960")
    response = client.get(f"{other}?{parts.query}")
    assert response.status_code == 403 and s3_error(response)["Code"] == "SignatureDoesNotMatch"


def test_missing_signature_is_access_denied(client: TestClient, image_url: str) -> None:
    response = client.get(urlsplit(image_url).path)
    assert response.status_code == 403 and s3_error(response)["Code"] == "AccessDenied"


def test_unknown_object_is_no_such_key(client: TestClient, clock: VirtualClock) -> None:
    name = "not-an-object.png"
    query = urlencode(UrlSigner(Settings().signing_key).sign(name, clock.now()))
    response = client.get(f"/temporary/outputs/{name}?{query}")
    assert response.status_code == 404
    error = s3_error(response)
    assert error["Code"] == "NoSuchKey" and error["Key"] == name


def test_authorization_header_is_refused(client: TestClient, image_url: str) -> None:
    # a client that reuses its API session for downloads fails against the real store
    response = client.get(image_url, headers={"Authorization": "Bearer sk-test"})
    assert response.status_code == 403
    assert s3_error(response)["Code"] == "InvalidArgument"
    assert "Only one auth mechanism allowed" in s3_error(response)["Message"]


def test_urls_survive_a_restart_with_the_same_key(clock: VirtualClock, image_url: str) -> None:
    # no per-URL state: another process with the same signing key serves the URL
    with TestClient(create_app(Settings(seed=99), clock=clock)) as other:
        assert other.get(image_url).status_code == 200
    with TestClient(create_app(Settings(signing_key="another-signing-key"), clock=clock)) as stranger:
        assert s3_error(stranger.get(image_url))["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize("path", ["/temporary/outputs/../../etc/passwd", "/temporary/outputs/a/b.png", "/default/x"])
def test_paths_outside_the_store_are_not_found(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and response.json() == "404 page not found"


def test_wrong_method_on_the_store(client: TestClient, image_url: str) -> None:
    assert client.post(image_url).status_code == 405


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        ("-1", "X-Amz-Expires must be non-negative"),
        ("99999999999999", "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        ("nan", "X-Amz-Expires should be a number"),
    ],
)
def test_a_lifetime_s3_would_refuse_is_refused_in_its_words(
    client: TestClient, image_url: str, expires: str, message: str
) -> None:
    parts = urlsplit(image_url)
    query = [p if not p.startswith("X-Amz-Expires=") else f"X-Amz-Expires={expires}" for p in parts.query.split("&")]
    response = client.get(f"{parts.path}?{'&'.join(query)}")
    assert response.status_code == 400
    error = s3_error(response)
    assert (error["Code"], error["Message"]) == ("AuthorizationQueryParametersError", message)


def test_every_download_says_it_takes_byte_ranges(client: TestClient, image_url: str) -> None:
    assert client.get(image_url).headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, None),
        ("bytes=-64", -64, None),
        ("bytes=10-99999999", 10, None),
        ("bytes=10-" + "9" * 5000, 10, None),  # outsider22: an end this long got the whole object, 200
        ("bytes=10-" + "0" * 40 + "19", 10, 19),
    ],
)
def test_a_byte_range_is_answered_206_with_that_part(
    client: TestClient, image_url: str, asked: str, first: int, last: int | None
) -> None:
    whole = client.get(image_url).content
    part = client.get(image_url, headers={"Range": asked})
    assert part.status_code == 206
    expected = whole[first : None if last is None else last + 1]
    assert part.content == expected
    start = first % len(whole)
    assert part.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/{len(whole)}"
    assert part.headers["content-length"] == str(len(expected))
    assert part.headers["content-type"] == "image/png" and "x-amz-request-id" in part.headers


def test_a_download_resumed_after_a_cut_puts_the_image_together(client: TestClient, image_url: str) -> None:
    whole = client.get(image_url).content
    got = whole[:1000]  # what a cut download delivered
    rest = client.get(image_url, headers={"Range": f"bytes={len(got)}-"})
    assert rest.status_code == 206 and got + rest.content == whole


@pytest.mark.parametrize("asked", ["bytes=999999999-", "bytes=-0"])
def test_a_range_past_the_end_is_invalid_range_416(client: TestClient, image_url: str, asked: str) -> None:
    size = len(client.get(image_url).content)
    refused = client.get(image_url, headers={"Range": asked})
    assert refused.status_code == 416
    assert refused.headers["content-range"] == f"bytes */{size}"
    error = s3_error(refused)
    assert error["Code"] == "InvalidRange" and error["Message"] == "The requested range is not satisfiable"
    assert error["RangeRequested"] == asked and error["ActualObjectSize"] == str(size)


@pytest.mark.parametrize("asked", ["bytes=0-9,20-29", "bytes=9-0", "items=0-9", "bytes=x-y", "bytes=" + "9" * 40 + "-"])
def test_a_range_s3_cannot_serve_as_one_part_gets_the_whole_object(
    client: TestClient, image_url: str, asked: str
) -> None:
    whole = client.get(image_url)
    answer = client.get(image_url, headers={"Range": asked})
    assert answer.status_code == 200 and answer.content == whole.content
    assert "content-range" not in answer.headers


def test_if_range_keeps_a_range_only_while_the_object_is_the_same(client: TestClient, image_url: str) -> None:
    whole = client.get(image_url)
    for same in (whole.headers["etag"], whole.headers["last-modified"]):
        assert client.get(image_url, headers={"Range": "bytes=0-9", "If-Range": same}).status_code == 206
    changed = client.get(image_url, headers={"Range": "bytes=0-9", "If-Range": '"another"'})
    assert changed.status_code == 200 and changed.content == whole.content


def test_a_range_on_an_expired_url_is_still_refused_as_expired(
    client: TestClient, clock: VirtualClock, image_url: str
) -> None:
    clock.advance(3600)
    refused = client.get(image_url, headers={"Range": "bytes=0-9"})
    assert refused.status_code == 403 and s3_error(refused)["Code"] == "AccessDenied"


_RANGE_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60),
    st.builds(
        lambda unit, first, last: f"{unit}={first}-{last}",
        st.sampled_from(["bytes", "BYTES", "items", ""]),
        st.one_of(st.just(""), st.integers(0, 10**12).map(str), st.text("0123456789-, ", max_size=8)),
        st.one_of(st.just(""), st.integers(0, 10**12).map(str), st.text("0123456789-, ", max_size=8)),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(asked=_RANGE_TEXT, if_range=st.one_of(st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=255))))
def test_any_range_header_gets_the_object_a_part_of_it_or_416(
    client: TestClient, image_url: str, asked: str, if_range: str | None
) -> None:
    whole = client.get(image_url).content
    headers = {"Range": asked.encode("latin-1")}  # any byte a header may carry
    if if_range is not None:
        headers["If-Range"] = if_range.encode("latin-1")
    answer = client.get(image_url, headers=headers)  # and checked against the contract
    assert answer.status_code in (200, 206, 416)
    if answer.status_code == 200:
        assert answer.content == whole
    elif answer.status_code == 206:
        first, last = map(int, answer.headers["content-range"].split(" ")[1].split("/")[0].split("-"))
        assert answer.content == whole[first : last + 1] and answer.content
    else:
        assert s3_error(answer)["Code"] == "InvalidRange"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "InvalidRequest"),
        (401, "AccessDenied"),
        (402, "AccountProblem"),
        (403, "AccessDenied"),
        (404, "NoSuchKey"),
        (413, "MaxMessageLengthExceeded"),
        (429, "SlowDown"),
        (500, "InternalError"),
        (502, "InternalError"),
        (503, "SlowDown"),
        (504, "InternalError"),
    ],
)
def test_an_injected_download_error_carries_the_s3_code_of_its_status(
    client: TestClient, image_url: str, status: int, code: str
) -> None:
    # outsider21: every status but 403, 404 and 503 said InternalError, "Please try again." (a 400 too)
    refused = client.get(image_url, headers={"X-Sfmock-Fault": str(status)})
    assert refused.status_code == status and s3_error(refused)["Code"] == code
