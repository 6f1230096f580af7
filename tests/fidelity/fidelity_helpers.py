"""What the fidelity tests share: a fake with given settings, checked against the contract."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.testclient import TestClient

from conftest import contract_hook_for
from sfmock import Settings, VirtualClock, create_app

GEN = "/v1/images/generations"
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
QWEN = {"model": "Qwen/Qwen-Image", "prompt": "a neon sign"}
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def bearer(key: str = "sk-fidelity-0123456789") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def fake(settings: Settings | None = None, clock: VirtualClock | None = None, **fields: Any) -> TestClient:
    """An in-process fake; every response it gives is checked against the contract in the
    dialect and with the image path of its settings."""
    settings = settings or Settings(seed=3, **fields)
    client = TestClient(create_app(settings, clock=clock or VirtualClock(START)), base_url=settings.base_url)
    client.event_hooks = {"request": [], "response": [contract_hook_for(settings)]}
    return client


def generate(client: TestClient, key: str = "sk-fidelity-0123456789", **body: Any) -> httpx.Response:
    return client.post(GEN, json=body, headers=bearer(key))


def model_ids(client: TestClient, **params: str) -> list[str]:
    answer = client.get("/v1/models", params=params, headers=bearer())
    assert answer.status_code == 200
    return [entry["id"] for entry in answer.json()["data"]]
