"""Images render off the event loop (issue 25): a download whose picture is being drawn
holds no other request up, and the cache of rendered pictures stays bounded whatever
names clients make up."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from conftest import served_while_held
from sfmock import Settings, VirtualClock
from sfmock.checks import ClientContext, check_client
from sfmock.imaging import RENDERED_BYTES, RENDERS_KEPT, forget_renders, render_png
from sfmock.server import FakeServer

AUTH = {"Authorization": "Bearer sk-render-0123456789"}


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer(Settings(seed=1), clock=VirtualClock()) as server:
        yield server


@pytest.mark.parametrize("route", ["download", "thumbnail"])
def test_other_requests_are_served_while_an_image_renders(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    """Pillow's resize (the render's first step) is held until health has answered."""
    body = {"model": "Kwai-Kolors/Kolors", "prompt": secrets.token_hex(8), "image_size": "1024x1024"}
    url = httpx.post(fake.api_url + "/images/generations", json=body, headers=AUTH).json()["images"][0]["url"]
    if route == "thumbnail":
        url = fake.url + "/_sfmock/ui/thumbnail/" + url.split("?")[0].rsplit("/", 1)[1]
    got = served_while_held(monkeypatch, Image.Image, "resize", fake.url, lambda: httpx.get(url, timeout=120))
    assert got.status_code == 200 and got.content.startswith(b"\x89PNG")


def test_the_render_cache_is_bounded_in_count_and_bytes() -> None:
    from sfmock.imaging import rendered_png, renders_held

    for index in range(RENDERS_KEPT + 50):
        render_png(index.to_bytes(4, "big"), 64, 64)
    assert rendered_png((0).to_bytes(4, "big"), 64, 64) is None  # the oldest went
    assert rendered_png((RENDERS_KEPT + 49).to_bytes(4, "big"), 64, 64) is not None
    assert renders_held()[0] <= RENDERS_KEPT
    for index in range(8):
        render_png(b"large%d" % index, 4096, 4096)
    assert renders_held()[1] <= RENDERED_BYTES


def test_an_async_client_check_waits_for_a_render_on_virtual_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a check's virtual-time loop the render runs on the loop: time stands still while
    it takes real time, so the client's 5 s deadline (a timer of the loop) cannot fire
    during a 0.2 s render."""
    original = Image.Image.resize

    def slow(self: Image.Image, *args: Any, **kwargs: Any) -> Image.Image:
        threading.Event().wait(0.2)  # real time: the check patches time.sleep
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", slow)

    async def client(ctx: ClientContext) -> bytes:
        async with ctx.async_http_client(timeout=5) as http:
            headers = {"Authorization": f"Bearer {ctx.api_key}"}
            answer = await http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=headers)
            image = await asyncio.wait_for(http.get(answer.json()["images"][0]["url"]), timeout=5)
            image.raise_for_status()
            return image.content

    forget_renders()  # the render is made during the check, not found in the cache
    check_client(client, schedule=[], returns_image=False)
