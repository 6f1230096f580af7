"""The "200 response", "Errors", "Rate limits" and "Endpoints clients call besides
generation" sections of the facts file."""

from __future__ import annotations

from decimal import Decimal

from fidelity_helpers import GEN, KOLORS, bearer, fake, generate, model_ids

from sfmock import Account, Limits, Settings

OVERLOADED = "Model service overloaded. Please try again later."


def test_the_documented_200_body_and_trace_id() -> None:
    """Fact "200 response" [doc]: {"images":[{"url"}], "timings":{"inference": float},
    "seed": int} and the header x-siliconcloud-trace-id, unique per request."""
    with fake() as client:
        first, second = generate(client, **KOLORS, seed=42), generate(client, **KOLORS)
    body = first.json()
    assert body["seed"] == 42 and isinstance(body["timings"]["inference"], float)
    assert body["images"][0]["url"].startswith("http")
    assert first.headers["x-siliconcloud-trace-id"] != second.headers["x-siliconcloud-trace-id"]


def test_the_fields_seen_since_2025() -> None:
    """Fact "200 response": real responses since 2025 also carry "data" (the same list as
    images), "created" (unix seconds) and "shared_id": "0" [seen]."""
    with fake() as client:
        body = generate(client, **KOLORS, batch_size=2).json()
    assert body["data"] == body["images"] and len(body["data"]) == 2
    assert body["shared_id"] == "0" and body["created"] == 1_767_225_600


def test_error_bodies_of_the_errors_table() -> None:
    """Fact "Errors" table rows [doc]: 400 unknown model (code 20012, "Model does not exist.
    Please check it carefully.", data null, application/json; charset=utf-8), 401 "Invalid
    token", 403 "Forbidden", 404 "404 page not found", 503 code 50505, 504 a plain string."""
    settings = Settings(seed=3, accounts=(Account(id="off", status="disabled", keys=(("sk-off", True),)),))
    with fake(settings) as client:
        assert client.post(GEN, json=KOLORS, headers=bearer("sk-off")).json() == "Forbidden"
    with fake() as client:
        unknown = generate(client, model="nope/nope", prompt="x")
        assert unknown.json() == {
            "code": 20012,
            "message": "Model does not exist. Please check it carefully.",
            "data": None,
        }
        assert unknown.headers["content-type"] == "application/json; charset=utf-8"
        assert client.post(GEN, json=KOLORS).json() == "Invalid token"
        assert client.get("/v2/nothing").json() == "404 page not found"
        overloaded = client.post(GEN, json=KOLORS, headers={**bearer(), "X-Sfmock-Fault": "503"}).json()
        assert (overloaded["code"], overloaded["message"]) == (
            50505,
            "Model service overloaded. Please try again later.",
        )
        timeout = client.post(GEN, json=KOLORS, headers={**bearer(), "X-Sfmock-Fault": "504"})
        assert timeout.status_code == 504 and isinstance(timeout.json(), str)


def test_the_402_body_by_setting() -> None:
    """Fact "Errors" row 402 {"code":30001,"message":"Sorry, your account balance is
    insufficient","data":null} [seen]: with ``balance_status: 402``."""
    settings = Settings(seed=3, balance_status=402, default_balance=Decimal("0"))
    with fake(settings) as client:
        refused = generate(client, **KOLORS)
    assert (refused.status_code, refused.json()["code"]) == (402, 30001)


def test_no_rate_limit_headers_unless_asked() -> None:
    """Fact "Errors": "No rate-limit or Retry-After header is documented or seen" [doc/seen];
    the ``rate_limit_headers`` setting adds them for clients that want them."""
    with fake(limits=Limits(ipm=1)) as client:
        generate(client, **KOLORS)
        refused = generate(client, **KOLORS)
    assert refused.status_code == 429 and "retry-after" not in refused.headers
    assert not [name for name in refused.headers if name.startswith("x-ratelimit")]
    with fake(limits=Limits(ipm=1), rate_limit_headers=True) as client:
        generate(client, **KOLORS)
        assert "retry-after" in generate(client, **KOLORS).headers


def test_image_models_are_limited_per_account_and_model_by_ipm() -> None:
    """Fact "Rate limits" [doc]: images count for IPM/IPD; "the lowest tier lists IPM 2,
    IPD 400" (``limits: realistic``); limits apply per account (not per key) and per model;
    whichever is reached first answers 429."""
    assert Limits.from_config("realistic") == Limits(ipm=2, ipd=400)
    account = Account(id="a", keys=(("sk-one", True), ("sk-two", True)))
    with fake(Settings(seed=3, limits=Limits.from_config("realistic"), accounts=(account,))) as client:
        assert generate(client, "sk-one", **KOLORS).status_code == 200
        assert generate(client, "sk-two", **KOLORS).status_code == 200
        refused = generate(client, "sk-one", **KOLORS)  # the account's third image this minute
        assert refused.status_code == 429 and "IPM" in refused.json()["message"]
        assert generate(client, "sk-two", model="Qwen/Qwen-Image", prompt="x").status_code == 200  # another model


def test_models_filter_by_type_and_sub_type() -> None:
    """Fact "Endpoints clients call besides generation" [doc]: GET /v1/models?type=&sub_type=
    answers {"object":"list","data":[{"id","object":"model","created":0,"owned_by":""}]};
    [seen] one client asks type=text-to-image, another type=image&page=&page_size=."""
    with fake() as client:
        listed = client.get("/v1/models", headers=bearer()).json()
        assert listed["object"] == "list"
        assert listed["data"][0] == {"id": "Kwai-Kolors/Kolors", "object": "model", "created": 0, "owned_by": ""}
        assert model_ids(client, type="text") == []
        assert "Qwen/Qwen-Image-Edit" not in model_ids(client, type="text-to-image")
        assert len(model_ids(client, type="image", page="", page_size="")) == len(listed["data"])


def test_user_info_reports_balances_as_strings() -> None:
    """Fact "Endpoints clients call besides generation" [doc]: GET /v1/user/info answers
    code 20000 with balance, chargeBalance and totalBalance as strings."""
    with fake(default_balance="100.00") as client:
        generate(client, **KOLORS)
        info = client.get("/v1/user/info", headers=bearer()).json()
    assert (info["code"], info["message"], info["status"]) == (20000, "OK", True)
    assert (info["data"]["balance"], info["data"]["chargeBalance"], info["data"]["totalBalance"]) == (
        "99.95",
        "0.00",
        "99.95",
    )
