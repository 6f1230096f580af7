"""URL signing as a pure function of name, key and time."""

from __future__ import annotations

import pytest

from sfmock import DownloadDenied
from sfmock.service.signing import MAX_TTL, ObjectName, UrlSigner

T0 = 1_767_225_600.0
NAME = "0123456789abcdef0123456789abcdef-1024x768_2.png"


def denied(call: object) -> DownloadDenied:
    with pytest.raises(DownloadDenied) as info:
        call()  # type: ignore[operator]
    return info.value


def test_object_name_round_trip() -> None:
    name = ObjectName.parse(NAME)
    assert name == ObjectName(digest="0123456789abcdef0123456789abcdef", width=1024, height=768, index=2)
    assert str(name) == NAME


@pytest.mark.parametrize(
    "text", ["", "x.png", NAME.replace(".png", ".jpg"), NAME.replace("1024x768", "0x768"), "../" + NAME, NAME.upper()]
)
def test_object_name_rejects_other_names(text: str) -> None:
    assert ObjectName.parse(text) is None


def test_signature_holds_until_expiry() -> None:
    signer = UrlSigner("k", ttl=3600)
    query = signer.sign(NAME, T0 + 0.9)
    assert query["X-Amz-Date"] == "20260101T000000Z" and query["X-Amz-Expires"] == "3600"
    signer.verify(NAME, query, T0)
    signer.verify(NAME, query, T0 + 3599.999)
    error = denied(lambda: signer.verify(NAME, query, T0 + 3600))
    assert (error.status, error.code, error.message) == (403, "AccessDenied", "Request has expired")


def test_expiry_follows_the_url_not_the_current_ttl() -> None:
    query = UrlSigner("k", ttl=60).sign(NAME, T0)
    UrlSigner("k", ttl=3600).verify(NAME, query, T0 + 59)
    assert denied(lambda: UrlSigner("k", ttl=3600).verify(NAME, query, T0 + 60)).message == "Request has expired"


def test_signature_depends_on_key_name_and_time() -> None:
    signer = UrlSigner("k")
    base = signer.sign(NAME, T0)["X-Amz-Signature"]
    assert UrlSigner("other").sign(NAME, T0)["X-Amz-Signature"] != base
    assert signer.sign(NAME.replace("_2", "_3"), T0)["X-Amz-Signature"] != base
    assert signer.sign(NAME, T0 + 1)["X-Amz-Signature"] != base
    assert signer.sign(NAME, T0)["X-Amz-Signature"] == base


def test_forged_malformed_date_is_denied_not_crashed() -> None:
    signer = UrlSigner("k")
    query = signer.sign(NAME, T0)
    forged = {**query, "X-Amz-Date": "yesterday"}
    forged["X-Amz-Signature"] = signer._signature(NAME, forged)
    assert denied(lambda: signer.verify(NAME, forged, T0)).code == "AuthorizationQueryParametersError"


@pytest.mark.parametrize("ttl", [0, -1, MAX_TTL + 1])
def test_ttl_bounds(ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl"):
        UrlSigner("k", ttl=ttl)
