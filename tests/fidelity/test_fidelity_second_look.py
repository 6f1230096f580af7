"""The "Observed in 2026, second look" table of the facts file (siliconflow-api.md): each
fact as a setting of its own, all of them in the 2026 profile (fixtures/live-2026.yaml)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from fidelity_helpers import GEN, KOLORS, bearer, fake, generate, model_ids
from PIL import Image

from conftest import contract_hook_for
from sfmock import Settings, load_contract, load_settings

PROFILE = Path(__file__).resolve().parents[2] / "fixtures" / "live-2026.yaml"
ERNIE = "baidu/ERNIE-Image-Turbo"
PLAIN_429 = "Request was rejected due to rate limiting. If you want more, please contact contact@siliconflow.cn"


def live() -> Settings:
    return load_settings(PROFILE)


def test_a_range_violation_answers_20015_naming_the_field() -> None:
    """Fact "Observed in 2026, second look" row
    "A range violation ... answers 400 code 20015 with the field named first" [seen,
    medium-high; a client app's notes, curl-checked 2026-10-03]: Kolors ``"seed": -1`` answers
    ``{"code":20015,"message":"seed: Must be greater than or equal to 0"}`` under
    ``range_errors: observed`` (the 2026 profile); omitting seed works; 20012 stays the default."""
    with fake(live()) as client:
        refused = generate(client, **KOLORS, seed=-1)
        assert (refused.status_code, refused.json()) == (
            400,
            {"code": 20015, "message": "seed: Must be greater than or equal to 0"},
        )
        high = generate(client, **KOLORS, batch_size=5).json()
        assert high == {"code": 20015, "message": "batch_size: Must be less than or equal to 4"}
        typed = generate(client, **KOLORS, seed="1").json()  # the library's wording of a type [guess]
        assert typed == {"code": 20015, "message": "seed: Invalid type. Expected: integer, given: string"}
        assert generate(client, **KOLORS).status_code == 200
    with fake() as client:  # the page's 400 by default
        assert generate(client, **KOLORS, seed=-1).json()["code"] == 20012


@pytest.mark.parametrize("size", ["", "1024", "1024*1024", "0x0", "big"])
def test_an_empty_or_malformed_image_size_answers_20026(size: str) -> None:
    """Fact "Observed in 2026, second look" row
    "An empty or malformed image_size answers 400 code 20026" [seen, medium;
    MartialBE/one-hub#583]: under ``size_errors: observed`` (the 2026 profile) it answers
    ``Image size format should be like 512x512.``; by default the page's 20012."""
    with fake(live()) as client:
        refused = generate(client, **KOLORS, image_size=size)
        assert (refused.status_code, refused.json()) == (
            400,
            {"code": 20026, "message": "Image size format should be like 512x512.", "data": None},
        )
    with fake() as client:
        assert generate(client, **KOLORS, image_size=size).json()["code"] == 20012


def test_images_download_as_octet_stream() -> None:
    """Fact "Observed in 2026, second look" row
    "The image object is served as Content-Type: application/octet-stream" [seen,
    medium; Anionex/banana-slides test_lazyllm_image_content_type.py]: the setting
    ``image_content_type`` (the 2026 profile) serves the same PNG bytes under that type."""
    with fake(live()) as client:
        url = generate(client, **KOLORS, image_size="1024x1024").json()["images"][0]["url"]
        picture = client.get(url)
        assert picture.status_code == 200
        assert picture.headers["content-type"] == "application/octet-stream"
        assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")
    with fake() as client:
        url = generate(client, **KOLORS).json()["images"][0]["url"]
        assert client.get(url).headers["content-type"] == "image/png"


def test_image_urls_carry_a_signed_sts_token_and_are_about_1_9_kb() -> None:
    """Fact "Observed in 2026, second look" row
    "Pre-signed URLs carry STS credentials: X-Amz-Security-Token=<~1.3 KB token>
    between X-Amz-SignedHeaders=host and X-Amz-Signature ... the whole URL is ~1.9 KB" [seen,
    medium-high; a verbatim URL in a public download script]: ``url_token: sts`` (the 2026
    profile). The token is signed like the rest: changed or dropped, the download is refused."""
    with fake(live()) as client:
        url = generate(client, **KOLORS).json()["images"][0]["url"]
        assert 1800 <= len(url) <= 2000, len(url)
        names = [name for name, _ in parse_qsl(urlsplit(url).query)]
        assert names[-3:] == ["X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature"]
        token = dict(parse_qsl(urlsplit(url).query))["X-Amz-Security-Token"]
        assert 1300 <= len(token) <= 1500
        assert client.get(url).status_code == 200
        encoded = quote(token, safe="")
        tampered = url.replace(encoded, quote("A" + token[1:], safe=""))
        assert tampered != url
        refused = client.get(tampered)
        assert refused.status_code == 403 and b"SignatureDoesNotMatch" in refused.content
        dropped = url.replace(f"&X-Amz-Security-Token={encoded}", "")
        assert client.get(dropped).status_code == 403
    with fake() as client:
        assert "X-Amz-Security-Token" not in generate(client, **KOLORS).json()["images"][0]["url"]


def test_object_names_have_the_live_shape() -> None:
    """Fact "Observed in 2026, second look" row
    "Object names look like <13-char id>_<32 hex>_<8 hex>_<8 hex>_00001_.png" [seen,
    medium; the same URLs]: ``object_names: observed`` (the 2026 profile); each image of a
    batch counts up from 00001, and each downloads at its size."""
    with fake(live()) as client:
        images = generate(client, **KOLORS, image_size="768x1024", batch_size=2).json()["images"]
        names = [urlsplit(image["url"]).path.rsplit("/", 1)[-1] for image in images]
        for number, name in enumerate(names, 1):
            head, digest, width, height, counter, tail = name.split("_")
            assert len(head) == 13 and head.isalnum() and head.islower()
            assert len(digest) == 32 and int(digest, 16) >= 0
            assert (width, height) == (f"{768:08x}", f"{1024:08x}")
            assert (counter, tail) == (f"{number:05d}", ".png")
        assert all(client.get(image["url"]).status_code == 200 for image in images)


def test_the_image_prefix_takes_the_temporary_none_form() -> None:
    """Fact "Observed in 2026, second look" row
    "the prefix was /default/outputs/ (2026-03) and /temporary/None/ (2026-05)" [seen,
    medium]: ``image_prefix: /temporary/None/`` issues and serves images there."""
    with fake(Settings(seed=3, image_prefix="/temporary/None/", object_names="observed")) as client:
        url = generate(client, **KOLORS).json()["images"][0]["url"]
        assert urlsplit(url).path.startswith("/temporary/None/")
        assert client.get(url).status_code == 200


def test_ernie_image_turbo_is_in_the_catalogue() -> None:
    """Fact "Observed in 2026, second look" row
    "baidu/ERNIE-Image-Turbo was offered (text-to-image) in May 2026" [seen, medium;
    sukafon/astrbot_plugin_big_banana#11]: listed and generating, in the 2026 profile too; its
    rules are Z-Image-Turbo's (the closest documented model), a guess."""
    spec = load_contract().models[ERNIE]
    assert (spec.sub_type, spec.batch) == ("text-to-image", False)
    with fake(live()) as client:
        assert ERNIE in model_ids(client, type="image", sub_type="text-to-image")
        answer = generate(client, model=ERNIE, prompt="a crane", image_size="768x1024")
        assert answer.status_code == 200 and len(answer.json()["images"]) == 1


def test_a_fault_picks_the_third_429_body() -> None:
    """Fact "Observed in 2026, second look" row
    "A third 429 body, with no code and no Details" [seen, medium, older; quoted on
    public pages 2024-25]: the dialect ``plain``, which a fault picks (and ``dialect: plain``
    for every 429)."""
    with fake(live()) as client:
        # the contract checks the answer in the dialect the fault picked
        client.event_hooks["response"] = [contract_hook_for(replace(live(), dialect="plain"))]
        answer = client.post(GEN, json=KOLORS, headers={**bearer(), "X-Sfmock-Fault": "error=429;dialect=plain"})
        assert (answer.status_code, answer.json()) == (429, {"message": PLAIN_429, "data": None})
    with fake(Settings(dialect="plain", limits={"ipm": 1})) as client:
        assert generate(client, **KOLORS).status_code == 200
        limited = generate(client, **KOLORS)
        assert (limited.status_code, limited.json()) == (429, {"message": PLAIN_429, "data": None})


@pytest.mark.parametrize("profile", ["default", "2026"])
def test_the_old_route_generates_with_the_model_from_the_path(profile: str) -> None:
    """Fact "Observed in 2026, second look" row
    "The 2024 route POST /v1/{model}/text-to-image (model in the path, body without
    model) still answered in 2025" [seen 2025; one-hub#583, the Portkey gateway's provider]:
    on every profile it answers as the main route, validates the body as it does, and the
    journal names the path's model."""
    settings = live() if profile == "2026" else Settings(seed=3)
    with fake(settings) as client:
        path = "/v1/Kwai-Kolors/Kolors/text-to-image"
        answer = client.post(path, json={"prompt": "a lighthouse", "image_size": "768x1024"}, headers=bearer())
        assert answer.status_code == 200
        picture = client.get(answer.json()["images"][0]["url"])
        assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
        refused = client.post(path, json={"prompt": "x", "image_size": ""}, headers=bearer())
        assert refused.status_code == 400
        expected = 20026 if profile == "2026" else 20012
        assert refused.json()["code"] == expected
        unknown = client.post("/v1/acme/Painter/text-to-image", json={"prompt": "x"}, headers=bearer())
        assert unknown.json()["message"] == "Model does not exist. Please check it carefully."
        assert client.post(path, json={"prompt": "x"}).status_code == 401  # the same admission
        journal = client.app.state.journal.entries(path=path)  # type: ignore[attr-defined]
        assert [e.model for e in journal] == ["Kwai-Kolors/Kolors"] * 3


def test_the_old_route_meets_the_generation_routes_faults() -> None:
    """Fact "Observed in 2026, second look" row
    "The 2024 route ..." [seen 2025]: a scenario rule for /v1/images/generations also
    fires on the old route (the same faults), and a rule can name the old route alone."""
    scenario = {"rules": [{"name": "busy", "when": {"path": GEN}, "action": {"error": 503}}]}
    with fake(Settings(seed=3, scenario=scenario)) as client:
        answer = client.post("/v1/Qwen/Qwen-Image/text-to-image", json={"prompt": "x"}, headers=bearer())
        assert answer.status_code == 503 and answer.json()["code"] == 50505
        entry = client.app.state.journal.entries()[-1]  # type: ignore[attr-defined]
        assert (entry.model, entry.fault is not None) == ("Qwen/Qwen-Image", True)


@pytest.mark.parametrize("settings", [Settings(seed=3), None])
def test_an_image_model_on_the_chat_endpoint_answers_model_does_not_exist(settings: Settings | None) -> None:
    """Fact "Observed in 2026, second look" row
    "An image model sent to /v1/chat/completions answers 400 {"code":20012,"message":
    "Model does not exist. Please check it carefully.","data":null}" [seen, high; AstrBot#9192,
    banana-slides#205]: on every profile; any other model gets a 404 whose body says sfmock
    fakes the image API only (never a 200, never a bare 404)."""
    with fake(settings or live()) as client:
        chat = {"model": "Kwai-Kolors/Kolors", "messages": [{"role": "user", "content": "draw"}]}
        answer = client.post("/v1/chat/completions", json=chat, headers=bearer())
        assert (answer.status_code, answer.json()) == (
            400,
            {"code": 20012, "message": "Model does not exist. Please check it carefully.", "data": None},
        )
        other = client.post("/v1/chat/completions", json={**chat, "model": "deepseek-ai/DeepSeek-V3"}, headers=bearer())
        assert other.status_code == 404  # with a body that says why: the route is not faked
        assert "sfmock fakes SiliconFlow's image API only" in other.json()["message"]
        assert "'deepseek-ai/DeepSeek-V3'" in other.json()["message"]
        assert client.post("/v1/chat/completions", json=chat).status_code == 401


@pytest.mark.parametrize("settings", [Settings(seed=3), None])
def test_a_client_sending_only_openais_size_gets_the_models_default_size(settings: Settings | None) -> None:
    """Fact "Observed in 2026, second look" row
    "Clients that send only OpenAI's size (no image_size) still get an image: the
    service defaults the size" [seen, low-medium; cherry-studio#16785; the Portkey gateway's
    openai provider drops image_size]: ``size`` is accepted and ignored, the model's default
    size is drawn (Qwen-Image: 1328x1328)."""
    with fake(settings or live()) as client:
        answer = generate(client, model="Qwen/Qwen-Image", prompt="x", size="512x512", n=1)
        assert answer.status_code == 200
        url = answer.json()["images"][0]["url"]
        name = urlsplit(url).path.rsplit("/", 1)[-1]
        size = f"{1328:08x}_{1328:08x}" if settings is None else "1328x1328"
        assert size in name
        picture = Image.open(io.BytesIO(client.get(url).content))
        assert picture.size == (1328, 1328)
