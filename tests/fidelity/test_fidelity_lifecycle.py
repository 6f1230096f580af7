"""Models come and go: the "Observed 2025-2026" row on retired models, on every path a
test can take to meet it (config, marker, Settings, the clock, a scenario rule)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fidelity_helpers import GEN, KOLORS, QWEN, START, bearer, fake, generate, model_ids

from conftest import FIXTURES
from sfmock import ConfigError, Lifecycle, Retirement, Scenario, Settings, VirtualClock, load_settings

DISABLED = {"code": 30003, "message": "Model disabled."}
SCHNELL = "black-forest-labs/FLUX.1-schnell"


def test_retirement_from_the_config_in_each_form(tmp_path: Path) -> None:
    """Fact "Observed 2025-2026" row "A retired model answers 403 ... Model disabled." [seen]:
    ``retire:`` takes a name, a list, or ``{model, at}`` / ``{model, after}`` mappings."""
    path = tmp_path / "c.yaml"
    for text in (
        "retire: Qwen/Qwen-Image\n",
        "retire: [Qwen/Qwen-Image]\n",
        "retire: {model: Qwen/Qwen-Image, at: 2025-09-01}\n",
        "retire: [{model: Qwen/Qwen-Image, at: 0}]\n",
    ):
        path.write_text(text)
        with fake(load_settings(path)) as client:
            assert (generate(client, **QWEN).status_code, generate(client, **QWEN).json()) == (403, DISABLED), text
            assert "Qwen/Qwen-Image" not in model_ids(client)


@pytest.mark.parametrize(
    ("text", "key", "phrase"),
    [
        ("retire: [Qwen/Qwen-Image, FLUX.9]\n", "retire[1]", "unknown model 'FLUX.9'"),
        ("retire: {model: Qwen/Qwen-Image, at: soon}\n", "retire", "'soon' does not match"),
        ("retire: {model: Qwen/Qwen-Image, at: 1, after: 2}\n", "retire", "should not be valid"),
        ("retire: {model: Qwen/Qwen-Image, after: -1}\n", "retire", "less than the minimum of 0"),
    ],
)
def test_a_bad_retirement_names_the_file_and_key(tmp_path: Path, text: str, key: str, phrase: str) -> None:
    """Fact "Observed 2025-2026" row "A retired model ..." [seen]: a wrong ``retire:`` entry
    stops the server with the file, the key and what was expected."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.source == str(path) and info.value.key.startswith(key), str(info.value)
    assert phrase in str(info.value)


def test_retirement_scheduled_on_the_clock() -> None:
    """Fact "Observed 2025-2026" row "Image models come and go" [seen]: ``{model, after}``
    and ``{model, at}`` retire a model mid-run, on the (virtual) clock."""
    clock = VirtualClock(START)
    retire = (
        Retirement(model="Qwen/Qwen-Image", after=60),
        Retirement.coerce({"model": SCHNELL, "at": "2026-01-01T00:02:00Z"}),
    )
    with fake(Settings(retire=retire), clock=clock) as client:
        assert generate(client, **QWEN).status_code == 200
        assert {"Qwen/Qwen-Image", SCHNELL} <= set(model_ids(client))
        clock.advance(59.9)
        assert generate(client, **QWEN).status_code == 200
        clock.advance(0.1)
        assert generate(client, **QWEN).json() == DISABLED
        assert generate(client, model=SCHNELL, prompt="x").status_code == 200
        clock.advance(60)
        assert generate(client, model=SCHNELL, prompt="x").json() == DISABLED
        assert not {"Qwen/Qwen-Image", SCHNELL} & set(model_ids(client))
        client.post("/_sfmock/reset")  # back to the start: both live again
        assert generate(client, **QWEN).status_code == 200


def test_the_shipped_scenario_retires_models_mid_run() -> None:
    """Fact "Observed 2025-2026" row "Image models come and go" [seen]: the shipped
    ``retiring-models`` scenario retires Qwen-Image after three generations (a rule with
    ``nth``) and FLUX.1-schnell after ten minutes (a rule with ``when: {after: 600}``)."""
    clock = VirtualClock(START)
    settings = Settings(seed=3, scenario=Scenario.load(FIXTURES / "scenarios" / "retiring-models.yaml"))
    with fake(settings, clock=clock) as client:
        assert [generate(client, **QWEN).status_code for _ in range(3)] == [200, 200, 200]
        assert generate(client, **QWEN).json() == DISABLED
        assert "Qwen/Qwen-Image" not in model_ids(client)
        assert generate(client, model=SCHNELL, prompt="x").status_code == 200
        clock.advance(600)
        assert SCHNELL not in model_ids(client)  # the first request after ten minutes retires it
        assert generate(client, model=SCHNELL, prompt="x").json() == DISABLED
        faults = [e.fault for e in client.app.state.journal.entries() if e.fault]  # type: ignore[attr-defined]
        assert faults == ["retire-qwen-image: retire=Qwen/Qwen-Image", f"retire-flux-schnell: retire={SCHNELL}"]
        client.post("/_sfmock/reset")
        assert generate(client, **QWEN).status_code == 200 and SCHNELL in model_ids(client)


def test_a_fault_header_retires_a_model() -> None:
    """Fact "Observed 2025-2026" row "A retired model answers 403" [seen]: ``X-Sfmock-Fault:
    retire=MODEL`` retires it from this request on; an unknown name stays 400 20012."""
    with fake() as client:
        first = client.post(GEN, json=QWEN, headers={**bearer(), "X-Sfmock-Fault": "retire=Qwen/Qwen-Image"})
        assert (first.status_code, first.json()) == (403, DISABLED)
        assert generate(client, **QWEN).json() == DISABLED
        assert generate(client, **KOLORS).status_code == 200
        assert generate(client, model="Qwen/Qwen-Image-2", prompt="x").json()["code"] == 20012


def test_a_scenario_cannot_retire_an_unknown_model() -> None:
    """Fact "Observed 2025-2026" row "A retired model ... (unknown names stay 400 20012)"
    [seen]: only a model of the catalogue can retire; the error names the rule."""
    document = {"rules": [{"when": {"after": 1}, "action": {"retire": "FLUX.9"}}]}
    with pytest.raises(ConfigError, match=r"rules\[0\]\.retire.*FLUX\.9"):
        Scenario.from_document(document, "s.yaml")


def test_lifecycle_is_one_lookup_and_resets_to_its_schedule() -> None:
    """Fact "Observed 2025-2026" row "Image models come and go" [seen]: the lifecycle on its
    own; a scenario's retirement is undone by a reset, the schedule is not."""
    lifecycle = Lifecycle(["Qwen/Qwen-Image", {"model": SCHNELL, "after": 10}], started=100.0)
    assert lifecycle.is_retired("Qwen/Qwen-Image", 0.0)
    assert not lifecycle.is_retired(SCHNELL, 109.0) and lifecycle.is_retired(SCHNELL, 110.0)
    lifecycle.retire("Kwai-Kolors/Kolors", 105.0)
    assert lifecycle.live(["Kwai-Kolors/Kolors", SCHNELL], 104.0) == ["Kwai-Kolors/Kolors", SCHNELL]
    assert lifecycle.live(["Kwai-Kolors/Kolors", SCHNELL], 110.0) == []
    lifecycle.reset(200.0)
    assert lifecycle.live(["Kwai-Kolors/Kolors", SCHNELL], 205.0) == ["Kwai-Kolors/Kolors", SCHNELL]


def test_the_marker_retires_models(pytester: pytest.Pytester) -> None:
    """Fact "Observed 2025-2026" row "A retired model answers 403" [seen]: the pytest
    marker takes ``retire=`` like any setting, on the server's virtual clock."""
    pytester.makepyfile(
        """
import httpx
import pytest

AUTH = {"Authorization": "Bearer sk-marker"}
QWEN = {"model": "Qwen/Qwen-Image", "prompt": "x"}

@pytest.mark.sfmock(retire=["Qwen/Qwen-Image"])
def test_retired(sfmock_server):
    answer = httpx.post(sfmock_server.api_url + "/images/generations", json=QWEN, headers=AUTH)
    assert (answer.status_code, answer.json()) == (403, {"code": 30003, "message": "Model disabled."})

@pytest.mark.sfmock(retire=[{"model": "Qwen/Qwen-Image", "after": 30}])
def test_retires_later(sfmock_server):
    url = sfmock_server.api_url + "/images/generations"
    assert httpx.post(url, json=QWEN, headers=AUTH).status_code == 200
    sfmock_server.advance(30)
    assert httpx.post(url, json=QWEN, headers=AUTH).status_code == 403
    models = httpx.get(sfmock_server.api_url + "/models", headers=AUTH).json()["data"]
    assert "Qwen/Qwen-Image" not in [m["id"] for m in models]
"""
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q").assert_outcomes(passed=2)
