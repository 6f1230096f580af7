"""The "Observed 2025-2026" table of the facts file: what the live service answers today."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fidelity_helpers import GEN, KOLORS, QWEN, bearer, fake, generate, model_ids
from starlette.testclient import TestClient

from sfmock import (
    Account,
    ConfigError,
    ContractViolation,
    Limits,
    Settings,
    check_response,
    load_contract,
    load_settings,
)

PIXEL_CAP = "width * height should not exceed 2073600"
BALANCE = {"code": 30001, "message": "Sorry, your account balance is insufficient", "data": None}


def test_qwen_image_caps_pixels_at_2073600() -> None:
    """Fact "Observed 2025-2026" row "Qwen/Qwen-Image caps width * height at 2,073,600" [seen]:
    2048x1152 answers 400 with the seen message, in the documented 400 shape."""
    with fake() as client:
        refused = generate(client, **QWEN, image_size="2048x1152")
        assert refused.status_code == 400
        assert refused.json() == {"code": 20012, "message": PIXEL_CAP, "data": None}
        assert generate(client, **QWEN, image_size="1440x1440").status_code == 200  # exactly the cap
        assert generate(client, **QWEN, image_size="1441x1440").json()["message"] == PIXEL_CAP
        # the cap is Qwen-Image's: Kolors (no such rule seen) takes 2048x1152
        assert generate(client, **KOLORS, image_size="2048x1152").status_code == 200


def test_qwen_image_recommended_sizes_fit_under_the_cap() -> None:
    """Fact "Observed 2025-2026" row "Qwen/Qwen-Image caps width * height" [seen] against
    the recommended sizes of "POST /v1/images/generations" [doc]: every one still works."""
    spec = load_contract().models["Qwen/Qwen-Image"]
    with fake(strict=True) as client:
        for size in spec.sizes:
            assert generate(client, **QWEN, image_size=size).status_code == 200, size


@pytest.mark.parametrize(("status", "expected"), [(None, 403), (403, 403), (402, 402)])
def test_insufficient_balance_is_403_by_default_and_402_by_setting(status: int | None, expected: int) -> None:
    """Fact "Observed 2025-2026" row "Insufficient balance, code 30001" [doc] 403, [seen] both:
    403 by default as the error-code page lists it; ``balance_status: 402`` keeps the other."""
    account = Account(id="broke", balance=Decimal("0.10"), keys=(("sk-broke", True),))
    settings = Settings(accounts=(account,), **({} if status is None else {"balance_status": status}))
    with fake(settings) as client:
        refused = generate(client, "sk-broke", **QWEN)  # 0.30 an image
        assert (refused.status_code, refused.json()) == (expected, BALANCE)


def test_balance_status_comes_from_the_config(tmp_path: Path) -> None:
    """Fact "Observed 2025-2026" row "Insufficient balance, code 30001" [seen both]: the
    setting is a config key (and a flag), checked like any other."""
    path = tmp_path / "c.yaml"
    path.write_text("balance_status: 402\n")
    assert load_settings(path).balance_status == 402
    path.write_text("balance_status: 401\n")
    with pytest.raises(ConfigError, match="balance_status"):
        load_settings(path)


def test_zero_balance_refuses_even_a_free_model_but_lists_models() -> None:
    """Fact "Observed 2025-2026" row "With a zero balance even models priced at zero answer
    30001; GET /v1/models still answers 200" [seen]; /v1/user/info answers too."""
    account = Account(id="empty", balance=Decimal("0.00"), keys=(("sk-empty", True),))
    free = {model: Decimal("0") for model in load_contract().models}
    with fake(Settings(accounts=(account,), prices=free)) as client:
        for model in ("Kwai-Kolors/Kolors", "Qwen/Qwen-Image", "Tongyi-MAI/Z-Image-Turbo"):
            refused = generate(client, "sk-empty", model=model, prompt="x")
            assert (refused.status_code, refused.json()) == (403, BALANCE), model
        listed = client.get("/v1/models", headers=bearer("sk-empty"))
        assert listed.status_code == 200 and len(listed.json()["data"]) == len(free)
        info = client.get("/v1/user/info", headers=bearer("sk-empty"))
        assert info.status_code == 200 and info.json()["data"]["totalBalance"] == "0.00"


def test_a_positive_balance_still_pays_for_a_free_model() -> None:
    """Fact "Observed 2025-2026" row "With a zero balance even models priced at zero answer
    30001" [seen]: only an empty account is refused; a free model costs nothing."""
    account = Account(id="some", balance=Decimal("0.01"), keys=(("sk-some", True),))
    with fake(Settings(accounts=(account,), prices={"Kwai-Kolors/Kolors": Decimal("0")})) as client:
        assert [generate(client, "sk-some", **KOLORS).status_code for _ in range(3)] == [200, 200, 200]


def test_a_retired_model_answers_model_disabled_and_leaves_the_list() -> None:
    """Fact "Observed 2025-2026" row "A retired model answers 403 {"code":30003,"message":
    "Model disabled."} ... (unknown names stay 400 20012)" [seen]."""
    with fake(retire=("black-forest-labs/FLUX.1-schnell",)) as client:
        retired = generate(client, model="black-forest-labs/FLUX.1-schnell", prompt="x")
        assert (retired.status_code, retired.json()) == (403, {"code": 30003, "message": "Model disabled."})
        assert "black-forest-labs/FLUX.1-schnell" not in model_ids(client)
        assert "black-forest-labs/FLUX.1-schnell" not in model_ids(client, sub_type="text-to-image")
        unknown = generate(client, model="black-forest-labs/FLUX.1-pro-unknown", prompt="x")
        assert unknown.status_code == 400 and unknown.json()["code"] == 20012
        assert generate(client, **KOLORS).status_code == 200


def test_the_2026_catalogue_fixture_holds_the_models_seen_live() -> None:
    """Fact "Observed 2025-2026" row "Image models come and go: by mid-2025 only Kolors was
    left on the .cn service (FLUX.1-schnell gone); Qwen-Image, -Edit and -Edit-2509 arrived
    by Sep 2025; Z-Image-Turbo works in 2026" [seen]: ``fixtures/live-2026.yaml``."""
    from conftest import FIXTURES

    with fake(load_settings(FIXTURES / "live-2026.yaml")) as client:
        assert sorted(model_ids(client)) == [
            "Kwai-Kolors/Kolors",
            "Qwen/Qwen-Image",
            "Qwen/Qwen-Image-Edit",
            "Qwen/Qwen-Image-Edit-2509",
            "Tongyi-MAI/Z-Image-Turbo",
            "baidu/ERNIE-Image-Turbo",  # "Observed in 2026, second look" [seen May 2026]
        ]
        assert generate(client, model="black-forest-labs/FLUX.1-dev", prompt="x").status_code == 403


IPM = "Request was rejected due to rate limiting. Details: IPM limit reached."


@pytest.mark.parametrize(
    ("limits", "body"),
    [
        ({"ipm": 1}, {"code": 50604, "message": IPM, "data": None}),
        ({"tpm": 5}, {"code": 50602, "message": IPM.replace("IPM", "TPM"), "data": None}),
        ({"rpm": 1}, {"message": IPM.replace("IPM", "RPM"), "data": None}),
    ],
)
def test_observed_dialect_words_429_as_the_live_service(limits: dict[str, int], body: dict[str, object]) -> None:
    """Fact "Observed 2025-2026" row "429 bodies as the live service sends them: code 50602
    (TPM), 50604 (IPM), and a code-less body; no contact sentence, a space after Details:,
    data null" [seen]; codes of the other metrics are the ``rate_limit_codes`` setting."""
    with fake(dialect="observed", limits=Limits(**limits)) as client:
        assert generate(client, **KOLORS).status_code == 200  # "a lighthouse": 3 tokens
        refused = generate(client, **KOLORS)
        assert (refused.status_code, refused.json()) == (429, body)


def test_documented_dialect_keeps_the_reference_page_429() -> None:
    """Fact "Errors" row 429 [doc], against "Observed 2025-2026" row "429 bodies" [seen]:
    the default dialect answers the reference page's body, and the conformance check of
    each dialect accepts its own body and no other."""
    with fake(limits=Limits(ipm=1)) as client:
        generate(client, **KOLORS)
        refused = generate(client, **KOLORS)
    body = refused.json()
    assert body["message"].endswith("contact@siliconflow.cn. Details:IPM limit reached.")
    assert body["data"] == refused.headers["x-siliconcloud-trace-id"]
    with pytest.raises(ContractViolation, match="observed dialect"):
        check_response("POST", GEN, 429, refused.headers, refused.content, dialect="observed")
    observed = b'{"code":50604,"message":"' + IPM.encode() + b'","data":null}'
    with pytest.raises(ContractViolation, match="documented dialect"):
        check_response("POST", GEN, 429, refused.headers, observed)
    check_response("POST", GEN, 429, refused.headers, observed, dialect="observed")


def test_rate_limit_codes_are_a_setting(tmp_path: Path) -> None:
    """Fact "Observed 2025-2026" row "429 bodies": the codes of IPD and TPD are a [guess]
    by analogy, so ``rate_limit_codes`` sets them (a metric left out has no code)."""
    path = tmp_path / "c.yaml"
    path.write_text("dialect: observed\nrate_limit_codes: {ipm: 50699}\nlimits: {ipm: 1}\n")
    with fake(load_settings(path)) as client:
        generate(client, **KOLORS)
        assert generate(client, **KOLORS).json()["code"] == 50699
    with fake(dialect="observed", limits=Limits(ipd=1), rate_limit_codes={}) as client:
        generate(client, **KOLORS)
        assert "code" not in generate(client, **KOLORS).json()


def test_a_fault_picks_the_dialect_of_one_answer() -> None:
    """Fact "Observed 2025-2026" row "429 bodies" [seen]: one run can meet both dialects;
    a fault (header or rule) words its answer, or a real limit's, in the dialect it names."""
    with fake(limits=Limits(ipm=1)) as client:
        forced = generate_with(client, "error=429;limit=IPM;dialect=observed")
        assert forced.json() == {"code": 50604, "message": IPM, "data": None}
        check_response("POST", GEN, 429, forced.headers, forced.content, dialect="observed")
        assert generate(client, **KOLORS).status_code == 200
        real = generate_with(client, "dialect=observed")  # the limit's own 429, observed
        assert real.status_code == 429 and real.json()["code"] == 50604
        check_response("POST", GEN, 429, real.headers, real.content, dialect="observed")
        assert "contact" in generate(client, **KOLORS).json()["message"]  # the server's dialect again


def generate_with(client: TestClient, fault: str) -> httpx.Response:
    """A generation with a forced fault; its answer's dialect is checked by hand."""
    hooks = client.event_hooks
    client.event_hooks = {"request": [], "response": []}
    try:
        return client.post(GEN, json=KOLORS, headers={**bearer(), "X-Sfmock-Fault": fault})
    finally:
        client.event_hooks = hooks


def test_a_key_of_the_other_region_can_be_met() -> None:
    """Fact "Observed 2025-2026" row "A second 401 body, "Api key is invalid"" [seen]: a
    fault sends it; the contract allows it beside "Invalid token"."""
    with fake() as client:
        answer = client.post(GEN, json=KOLORS, headers={**bearer(), "X-Sfmock-Fault": "401;message=Api key is invalid"})
        assert (answer.status_code, answer.json()) == (401, "Api key is invalid")
        assert client.post(GEN, json=KOLORS).json() == "Invalid token"


def test_models_can_be_listed_by_sub_type_alone() -> None:
    """Fact "Observed 2025-2026" row "GET /v1/models?sub_type=text-to-image (sub_type alone)
    is called by clients" [seen]."""
    with fake() as client:
        ids = model_ids(client, sub_type="text-to-image")
        edits = model_ids(client, sub_type="image-to-image")
    assert "Kwai-Kolors/Kolors" in ids and "Qwen/Qwen-Image-Edit" not in ids
    assert set(edits) == {"Qwen/Qwen-Image-Edit", "Qwen/Qwen-Image-Edit-2509", "black-forest-labs/FLUX.1-Kontext-dev"}


def test_a_scenario_rule_picks_the_dialect_so_one_run_meets_both() -> None:
    """Fact "Observed 2025-2026" row "429 bodies as the live service sends them" [seen]
    beside "Errors" row 429 [doc]: a rule words its 429 as observed while the server's
    dialect stays documented, so one run meets both bodies."""
    from sfmock import Scenario

    rule = {
        "when": {"path": GEN},
        "sequence": [
            {"error": {"status": 429, "limit": "IPM"}, "dialect": "observed"},
            {"error": {"status": 429, "limit": "IPM"}},
        ],
    }
    with fake(Settings(seed=3, scenario=Scenario.from_document({"rules": [rule]}, "s.yaml"))) as client:
        client.event_hooks = {"request": [], "response": []}  # two dialects: checked one by one below
        observed, documented = generate(client, **KOLORS), generate(client, **KOLORS)
    check_response("POST", GEN, 429, observed.headers, observed.content, dialect="observed")
    check_response("POST", GEN, 429, documented.headers, documented.content, dialect="documented")
    assert observed.json()["code"] == 50604 and "contact" in documented.json()["message"]
    with pytest.raises(ContractViolation):
        check_response("POST", GEN, 429, observed.headers, observed.content, dialect="documented")


def test_code_20015_for_images_is_a_setting(tmp_path: Path) -> None:
    """Fact "Observed 2025-2026" row "Invalid parameters on other endpoints answer
    {"code":20015,"message":"The parameter is invalid. Please check again.","data":null}"
    [seen] chat/embeddings, [guess] images: ``invalid_parameter_code: 20015`` answers it
    (no field named); the default stays the documented 20012 naming the field."""
    with fake() as client:
        documented = generate(client, **KOLORS, batch_size=9).json()
        assert documented["code"] == 20012 and "batch_size" in documented["message"]
    path = tmp_path / "c.yaml"
    path.write_text("invalid_parameter_code: 20015\nunknown_fields: reject\n")
    seen = {"code": 20015, "message": "The parameter is invalid. Please check again.", "data": None}
    with fake(load_settings(path)) as client:
        assert generate(client, **KOLORS, batch_size=9).json() == seen
        assert generate(client, **KOLORS, n=1).json() == seen
        assert generate(client, **QWEN, image_size="2048x1152").json()["message"] == PIXEL_CAP  # seen as is
        assert generate(client, model="nope/nope", prompt="x").json()["code"] == 20012  # unknown model: documented
