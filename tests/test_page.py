"""The page at /_sfmock/ and its feeds; then the page itself, in headless Chromium."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from importlib import resources

import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from conftest import AUTH, FIXTURES, contract_hook
from sfmock import Limits, Settings, VirtualClock, create_app, load_settings
from sfmock.clock import ShiftedClock
from sfmock.scrubbing import scrub_query, scrub_text
from sfmock.server import FakeServer

GEN = "/v1/images/generations"
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "image_size": "1024x576"}


@pytest.fixture
def api(clock: VirtualClock) -> Iterator[TestClient]:
    settings = Settings(seed=4, limits=Limits(ipm=5), default_balance=Decimal("1.00"))
    with TestClient(create_app(settings, clock=clock)) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        yield client


def test_the_page_is_one_self_contained_file(api: TestClient) -> None:
    for path in ("/_sfmock/", "/_sfmock/ui"):
        answer = api.get(path)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert "connect-src 'self'" in answer.headers["content-security-policy"]
        # no other site may frame it (clickjacking): the CSP for today's browsers, the header for older ones
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"
    html = api.get("/_sfmock/").text
    assert html == resources.files("sfmock.chaos").joinpath("page.html").read_text("utf-8")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE)  # nothing from elsewhere
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:)", html)  # no second file either
    assert api.get("/_sfmock/journal").json()["count"] == 0  # the page itself is not journalled


def test_the_feed_gives_new_entries_with_their_answers_and_thumbnails(api: TestClient) -> None:
    url = api.post(GEN, json=KOLORS, headers=AUTH).json()["images"][0]["url"]
    api.post(GEN, json=KOLORS, headers={**AUTH, "X-Sfmock-Fault": "503"})
    api.get(url)
    feed = api.get("/_sfmock/ui/feed").json()
    assert [e["id"] for e in feed["entries"]] == [1, 2, 3]
    assert (feed["session"], feed["scenario"]) == (None, "none")
    first, failed, download = feed["entries"]
    # the answer's URL as the journal shows a download's: its signature and credential REDACTED
    assert first["answer"]["images"][0]["url"] == scrub_text(url) != url
    signature = re.search(r"X-Amz-Signature=([0-9a-f]{64})", url)
    assert signature and signature[1] not in json.dumps(feed) and "X-Amz-Signature=REDACTED" in json.dumps(feed)
    assert '"images"' in first["answer"]["body"]
    assert failed["answer"]["body"].startswith('{"code":50505')
    thumbnail_path = first["answer"]["images"][0]["thumbnail"]
    # the download as the journal saw it: no origin, and its signature scrubbed as every credential is
    local = url.removeprefix(Settings().image_base_url)
    assert "X-Amz-Signature=REDACTED" in download["answer"]["images"][0]["url"]
    local = local.split("?")[0] + "?" + scrub_query(local.split("?")[1])
    assert download["answer"]["images"] == [{"url": local, "thumbnail": thumbnail_path}]
    assert (download["answer"]["content_type"], download["answer"]["body"]) == ("image/png", "")
    assert [e["id"] for e in api.get("/_sfmock/ui/feed?after=2").json()["entries"]] == [3]
    assert api.get("/_sfmock/ui/feed?after=x").status_code == 400

    thumbnail = api.get(thumbnail_path)
    assert thumbnail.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(thumbnail.content)) as picture:
        assert picture.size == (160, 90)  # 1024x576, 160 on the longer side
    assert api.get("/_sfmock/ui/thumbnail/nothing.png").status_code == 404


def test_accounts_show_balance_and_usage_against_each_limit(api: TestClient, clock: VirtualClock) -> None:
    api.post(GEN, json={**KOLORS, "batch_size": 2}, headers=AUTH)
    (account,) = api.get("/_sfmock/ui/accounts").json()["accounts"]
    assert (account["balance"], account["spent"]) == ("0.90", "0.10")
    assert account["usage"] == [
        {"model": "Kwai-Kolors/Kolors", "metric": "ipm", "unit": "images", "limit": 5, "used": 2, "reset": 60}
    ]
    clock.advance(60)
    assert api.get("/_sfmock/ui/accounts").json()["accounts"][0]["usage"][0]["used"] == 0


def test_configured_accounts_are_listed_before_use(clock: VirtualClock) -> None:
    with TestClient(create_app(load_settings(FIXTURES / "accounts.yaml"), clock=clock)) as client:
        listed = client.get("/_sfmock/ui/accounts").json()["accounts"]
    assert "acct-valid" in [a["id"] for a in listed] and all(a["usage"] == [] for a in listed)


def test_shipped_scenarios_are_offered_as_documents(api: TestClient) -> None:
    shipped = api.get("/_sfmock/ui/scenarios").json()["scenarios"]
    assert {"happy", "flaky", "overloaded"} <= set(shipped)
    assert api.put("/_sfmock/scenario", json=shipped["overloaded"]).json()["name"] == "overloaded"


def test_the_clock_freezes_and_thaws(clock: VirtualClock) -> None:
    shifted = ShiftedClock()
    with TestClient(create_app(Settings(), clock=shifted)) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        frozen = client.post("/_sfmock/clock", json={"freeze": True}).json()
        assert frozen["frozen"] is True and shifted.now() == frozen["now"]
        assert client.post("/_sfmock/clock", json={"advance": 90}).json()["now"] == frozen["now"] + 90
        assert client.post("/_sfmock/clock", json={"freeze": False}).json()["frozen"] is False
        assert shifted.now() >= frozen["now"] + 90
        assert client.post("/_sfmock/clock", json={"freeze": "yes"}).status_code == 400
    with TestClient(create_app(Settings(), clock=clock)) as client:  # a virtual clock is always still
        assert client.post("/_sfmock/clock", json={"freeze": True}).json()["frozen"] is True
        refused = client.post("/_sfmock/clock", json={"freeze": False})
        assert refused.status_code == 409 and refused.json()["error"] == "clock: this server's clock cannot be thawed"


def test_the_page_s_data_needs_the_token_off_loopback(clock: VirtualClock) -> None:
    app = create_app(Settings(host="0.0.0.0", control_token="s3cret-token"), clock=clock)
    with TestClient(app) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        assert client.get("/_sfmock/").status_code == 200  # the page holds no data
        for path in ("ui/feed", "ui/accounts", "ui/scenarios", "ui/thumbnail/x.png"):
            assert client.get(f"/_sfmock/{path}").status_code == 401
            assert client.get(f"/_sfmock/{path}", headers={"X-Sfmock-Token": "s3cret-token"}).status_code in (200, 404)


# --- in a real browser -----------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; see docs/development.md)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package (test extra) is missing")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def test_watching_the_page_while_a_client_works(browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    with (
        FakeServer(control_token="tok-0123456789") as fake,
        httpx.Client(base_url=fake.api_url, headers=AUTH) as client,
    ):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        problems: list[str] = []
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        own = (fake.url, f"blob:{fake.url}")
        page.on("request", lambda request: None if request.url.startswith(own) else problems.append(request.url))
        page.goto(f"{fake.url}/_sfmock/#token=tok-0123456789")
        expect(page.locator("#state")).to_contain_text("live")
        rows = page.locator("tr.entry")

        for prompt in ("one", "two", "three"):  # requests appear without a reload
            assert client.post("/images/generations", json={**KOLORS, "prompt": prompt}).status_code == 200
        expect(rows).to_have_count(3)
        expect(rows.first).to_have_attribute("data-status", "200")

        rows.last.click()  # the first request: its body, its answer, its picture
        expect(page.get_by_test_id("request")).to_contain_text('"prompt": "one"')
        expect(page.get_by_test_id("answer")).to_contain_text('"images"')
        expect(page.locator("[data-testid=thumbs] img[src^='blob:']")).to_have_count(1)
        expect(page.get_by_test_id("accounts")).to_contain_text("spent 0.15")

        page.get_by_test_id("shipped").select_option("overloaded")
        page.get_by_test_id("load").click()
        expect(page.get_by_test_id("scenario-name")).to_have_text("overloaded")
        assert client.post("/images/generations", json=KOLORS).status_code == 503
        expect(rows).to_have_count(4)
        expect(rows.first).to_have_attribute("data-status", "503")
        expect(rows.first).to_contain_text("fault: overload")

        editor = page.get_by_test_id("scenario")
        editor.fill("name: edited\nrules:\n  - action: {error: {status: 429, limit: RPM}}\n")  # YAML or JSON
        page.get_by_test_id("apply").click()
        expect(page.get_by_test_id("scenario-name")).to_have_text("edited")
        assert client.post("/images/generations", json=KOLORS).status_code == 429
        expect(rows.first).to_have_attribute("data-status", "429")

        before, shown = fake.clock.now(), page.get_by_test_id("now").inner_text()
        page.get_by_test_id("advance").click()  # 60 seconds by default
        expect(page.get_by_test_id("now")).not_to_have_text(shown)
        expect(page.get_by_test_id("now")).to_contain_text("(frozen)")  # a FakeServer's clock is virtual
        assert fake.clock.now() == before + 60

        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, "the page scrolls sideways at phone width"
        assert problems == []

        editor.fill('{"name": "bad", "rules": [{"action": {"error": 429, "limit": "RPM"}}]}')
        page.get_by_test_id("apply").click()  # a bad edit is refused, and the page says why
        expect(page.locator("#message.error")).to_contain_text("rules[0].action.limit: unknown key")
        expect(page.get_by_test_id("scenario-name")).to_have_text("edited")
        page.close()


def test_the_page_without_the_token_says_so(browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    with FakeServer(control_token="tok-0123456789") as fake:
        page = browser.new_page()
        page.goto(f"{fake.url}/_sfmock/")
        expect(page.locator("#state")).to_contain_text("offline: the control API needs the x-sfmock-token header")
        page.get_by_test_id("token").fill("tok-0123456789")
        page.get_by_test_id("token").dispatch_event("change")
        expect(page.locator("#state")).to_contain_text("live")
        page.close()


def test_rows_show_the_prompt_and_a_thumbnail_and_filter_by_path_status_model_session_and_text(
    browser: object,
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    long_prompt = "a lighthouse on a cliff at dusk, oil painting, dramatic clouds over a dark green sea, gulls, spray"
    hostile = '<img src=x onerror="document.title=1">'
    with FakeServer() as fake, httpx.Client(base_url=fake.api_url, headers=AUTH) as client:
        assert client.post("/images/generations", json={**KOLORS, "prompt": long_prompt}).status_code == 200
        qwen = {"model": "Qwen/Qwen-Image", "prompt": "two dogs in the snow", "image_size": "1328x1328"}
        assert client.post("/images/generations", json=qwen).status_code == 200
        failed = client.post(
            "/images/generations", json={**KOLORS, "prompt": hostile}, headers={"X-Sfmock-Fault": "503"}
        )
        assert failed.status_code == 503
        assert client.get("/models").status_code == 200
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{fake.url}/_sfmock/")
        rows = page.locator("tr.entry")
        expect(rows).to_have_count(4)
        first, second, third, fourth = (page.locator(f"tr.entry[data-id='{n}']") for n in (1, 2, 3, 4))
        # the prompt, shortened to 90 characters, as text
        assert len(long_prompt) > 90
        expect(first.get_by_test_id("prompt")).to_have_text(long_prompt[:89].rstrip() + "…")
        expect(second.get_by_test_id("prompt")).to_have_text("two dogs in the snow")
        expect(third.get_by_test_id("prompt")).to_have_text(hostile)
        expect(fourth.get_by_test_id("prompt")).to_have_count(0)
        # a thumbnail where there is an image, none where there is not
        expect(first.locator("td.thumb img[src^='blob:']")).to_have_count(1)
        expect(second.locator("td.thumb img[src^='blob:']")).to_have_count(1)
        expect(third.locator("img")).to_have_count(0)
        expect(fourth.locator("img")).to_have_count(0)
        assert page.title() == "sfmock"  # the hostile prompt stayed text

        visible = page.locator("tr.entry:visible")
        page.get_by_test_id("filter-path").fill("/v1/models")
        expect(visible).to_have_count(1)
        expect(page.get_by_test_id("shown")).to_have_text("showing 1 of 4")
        page.get_by_test_id("filter-path").fill("/v1/images/*")
        expect(visible).to_have_count(3)
        page.get_by_test_id("filter-status").select_option("5")
        expect(visible).to_have_count(1)
        expect(visible.first).to_have_attribute("data-id", "3")
        page.get_by_test_id("filter-status").select_option("2")
        page.get_by_test_id("filter-model").select_option("Qwen/Qwen-Image")
        expect(visible).to_have_count(1)
        expect(visible.first).to_have_attribute("data-id", "2")
        page.get_by_test_id("filter-model").select_option("")
        page.get_by_test_id("filter-text").fill("LIGHTHOUSE")
        expect(visible).to_have_count(1)
        expect(visible.first).to_have_attribute("data-id", "1")
        page.get_by_test_id("filter-text").fill("nothing like it")
        expect(visible).to_have_count(0)
        expect(page.locator("#empty")).to_have_text("No request matches the filter.")
        page.get_by_test_id("filter-text").fill("")
        page.get_by_test_id("filter-path").fill("")
        page.get_by_test_id("filter-status").select_option("")
        expect(visible).to_have_count(4)

        # sessions: the ones the fake holds are offered; choosing one shows its requests alone
        client.get("/models", headers={"X-Sfmock-Session": "job-7"})
        expect(page.locator("#sessions option[value='job-7']")).to_have_count(1)
        page.get_by_test_id("session").fill("job-7")
        page.get_by_test_id("session").dispatch_event("change")
        expect(rows).to_have_count(1)
        expect(page.locator("#state")).to_contain_text("session job-7")
        page.close()


def test_the_detail_opens_beside_the_list_without_a_scroll(browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    with FakeServer() as fake, httpx.Client(base_url=fake.api_url, headers=AUTH) as client:
        for n in range(30):
            assert client.post("/images/generations", json={**KOLORS, "prompt": f"picture {n}"}).status_code == 200
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{fake.url}/_sfmock/")
        rows = page.locator("tr.entry")
        expect(rows).to_have_count(30)
        oldest = page.locator("tr.entry[data-id='1']")
        oldest.scroll_into_view_if_needed()  # far down the list
        oldest.click()
        detail = page.get_by_test_id("detail")
        expect(page.get_by_test_id("detail-prompt")).to_have_text("prompt picture 0")
        expect(detail).to_be_visible()  # the text may be in it a moment before it shows (a busy machine)
        # the page itself did not scroll; the detail is in view, to the right of the list
        assert page.evaluate("window.scrollY") == 0
        box, listed = detail.bounding_box(), page.locator("#list-pane").bounding_box()
        assert box is not None and listed is not None
        assert box["x"] >= listed["x"] + listed["width"]
        assert 0 <= box["y"] and box["y"] + 100 <= 800
        page.keyboard.press("Escape")
        expect(detail).to_be_hidden()
        page.close()


def test_the_page_refuses_to_be_framed(browser: object) -> None:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    with FakeServer() as fake:
        page = browser.new_page()
        page.set_content(f'<iframe src="{fake.url}/_sfmock/" width="800" height="600"></iframe>')
        page.wait_for_timeout(1000)  # a frame that would load does so in a few milliseconds
        (framed,) = page.main_frame.child_frames
        assert framed.evaluate("document.getElementById('state')") is None
        page.close()
