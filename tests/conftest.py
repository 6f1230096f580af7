"""Shared fixtures. Every HTTP response a test sees is checked against the contract."""

from __future__ import annotations

import atexit
import base64
import gc
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from starlette.applications import Starlette
from starlette.testclient import TestClient

from redis_server import RedisCluster, RedisServer, need_redis
from scheduling import longest_first, make_scheduler
from sfmock import ConfigError, Settings, VirtualClock, check_response, create_app
from sfmock.server import FakeServer
from upstream import running_upstream

pytest_plugins = ["pytester"]


def _cache_bytecode_in_a_temporary_folder() -> None:
    """Where PYTHONDONTWRITEBYTECODE is set (container images often set it), every Python the
    suite starts (xdist's workers, the pytest runs of pytester and of the examples, each
    ``sfmock serve``) compiled what it imports from source, and pytest rewrote the asserts of
    every plugin's package (sfmock, schemathesis, faker...) again: seconds of CPU a process.
    They keep their bytecode in a temporary folder instead, removed at the end: still nothing
    is written beside the sources or into site-packages."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    folder = tempfile.mkdtemp(prefix="sfmock-tests-bytecode-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = folder


_cache_bytecode_in_a_temporary_folder()  # before xdist starts its workers: they inherit it


def _rewrite_the_tests_once(config: pytest.Config) -> None:
    """Under xdist every worker rewrote the asserts of every test module (about 3 s of CPU
    each, 5 workers on 2 cores) at the same moment, none finding another's cache yet. The
    controller rewrites them once into the cache first (where the workers will look, the
    temporary folder above or ``__pycache__``), before it starts them. This uses pytest's
    own rewriting functions, which are not public: where they moved, the workers rewrite
    the modules themselves, as before."""
    if hasattr(config, "workerinput") or config.getoption("dist", "no") == "no":
        return
    folder = os.environ.get("PYTHONPYCACHEPREFIX")
    if sys.dont_write_bytecode and not folder:
        return  # the workers do not cache them either
    before = sys.pycache_prefix
    sys.pycache_prefix = folder or before  # the folder the workers inherit, not yet this process's
    try:
        from _pytest.assertion import rewrite

        state = config.stash[rewrite.assertstate_key]
        for path in sorted([*Path(__file__).parent.rglob("test_*.py"), *Path(__file__).parent.rglob("conftest.py")]):
            if "node_modules" in path.parts or not rewrite.try_makedirs(rewrite.get_cache_dir(path)):
                continue
            source_hash, code = rewrite._rewrite_test(path, config)
            rewrite._write_pyc(state, code, source_hash, rewrite.get_cache_dir(path) / (path.stem + rewrite.PYC_TAIL))
    except (ImportError, AttributeError, KeyError, TypeError, OSError, SyntaxError):
        pass
    finally:
        sys.pycache_prefix = before


def pytest_configure(config: pytest.Config) -> None:
    _rewrite_the_tests_once(config)  # before xdist's session starts the workers


# A suite started as a script's background job comes in with SIGINT ignored, and every
# process it starts inherits that: the tests that press Ctrl+C on a real `sfmock` would
# then meet a process deaf to it. They model a terminal's foreground run: Python's own handler.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Tests never depend on wall-clock speed: on a busy machine a property test's example (a
# request through the whole app) can take longer than Hypothesis's deadline of 200 ms and a
# draw can stall past its health check's second. Hypothesis's CI profile turns both off; a
# developer's run on a busy laptop gets the same, with whatever else that profile sets kept.
settings.register_profile(
    "sfmock-suite",
    parent=settings.default,
    deadline=None,
    suppress_health_check=list({*settings.default.suppress_health_check, HealthCheck.too_slow}),
)
settings.load_profile("sfmock-suite")


def _one_tls_context_for_httpx() -> None:
    """Every ``httpx.Client()`` (and ``httpx.get``) builds a TLS context with certifi's
    certificates, 20 ms of CPU, even for the plain ``http://`` every test speaks; the suite
    makes thousands (its own clients and those of the client catalogue's authors), a tenth
    of its CPU. In the suite's processes the default one is built once and shared: the same
    verification, the same settings (contexts are safe to share between connections)."""
    from httpx._transports import default

    build = default.create_ssl_context
    shared: list[Any] = []

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None or not trust_env:
            return build(verify=verify, cert=cert, trust_env=trust_env)
        if not shared:
            shared.append(build())
        return shared[0]

    default.create_ssl_context = create_ssl_context  # type: ignore[assignment]


_one_tls_context_for_httpx()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = longest_first(items)  # the longest tests start first (tests/scheduling.py)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """What the collection built (every module, the Schemathesis and Hypothesis tests, some
    200,000 objects a worker) stays for the whole run: moved out of the garbage collector's
    sight, so that each of a worker's full collections (about 8 of 200 ms in its run) no
    longer walks it again. Measured on the catalogue's correct clients, three workers: 3.0
    -> 1.7 s of collecting a worker. The objects are not freed earlier either way."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: three workers more than the cores. Many of the longest tests mostly wait in
    real time (a program check runs for its 60 s budget on ~12 s of CPU; live sockets,
    subprocesses, server start-ups), so a core would otherwise idle behind them. On 2 idle
    cores, 2026-12-07: 4 workers 5 min 16 s, 5 workers 4 min 47 s, 6 workers 5 min 0 s."""
    return len(os.sched_getaffinity(0)) + 3


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own; xdist may be absent
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return make_scheduler(config, log)


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KEY = "sk-test-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


DEFAULTS = Settings()


def contract_hook(response: httpx.Response, settings: Settings | None = None) -> None:
    """httpx response hook: fail the test if the response breaks the contract (in the
    dialect and with the image path of ``settings``, the defaults' when not given)."""
    response.read()
    request = response.request
    settings = settings or DEFAULTS
    check_response(
        request.method,
        request.url.path,
        response.status_code,
        response.headers,
        response.content,
        dialect=settings.dialect,
        image_prefix=settings.image_prefix,
    )


def contract_hook_for(settings: Settings) -> Callable[[httpx.Response], None]:
    """:func:`contract_hook` for a server with these settings."""
    return lambda response: contract_hook(response, settings)


def assert_config_error(load: Callable[[Path], object], path: Path, text: str, key: str, phrase: str) -> None:
    """Writing ``text`` to ``path`` and loading it fails naming the file, ``key`` and ``phrase``."""
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert (info.value.source, info.value.key) == (str(path), key)
    assert phrase in info.value.expected, info.value.expected
    assert str(path) in str(info.value) and key in str(info.value)


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def data_url(path: Path = FIXTURES / "images" / "input.png", media: str = "image/png") -> str:
    return f"data:{media};base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(1_767_225_600)  # 2026-01-01T00:00:00Z


@pytest.fixture
def settings() -> Settings:
    return Settings(seed=7)


@pytest.fixture
def client(settings: Settings, clock: VirtualClock) -> Iterator[TestClient]:
    """An in-process client of a fresh fake on a virtual clock."""
    app = create_app(settings, clock=clock)
    with TestClient(app, base_url=settings.base_url, raise_server_exceptions=True) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook_for(settings)]}
        yield test_client


@pytest.fixture
def generate(client: TestClient) -> Callable[..., httpx.Response]:
    """POST a generation request with a valid key; keyword arguments become the body."""

    def post(headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        return client.post("/v1/images/generations", json=body, headers={**AUTH, **(headers or {})})

    return post


LiveServer = FakeServer  # url, api_url, clock, settings, app, journal


def run_server(settings: Settings, clock: VirtualClock) -> FakeServer:
    """The fake on a real socket (uvicorn in a thread, ephemeral port): use with ``with``."""
    return FakeServer(settings, clock=clock)


@pytest.fixture
def live_server(clock: VirtualClock) -> Iterator[LiveServer]:
    """A default fake (open mode, seed 11) on a real socket."""
    with run_server(Settings(seed=11), clock) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (tests/state/); ``redis_url`` empties it per test."""
    need_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One real three-node Redis Cluster for the session; ``cluster_url`` empties it per test."""
    need_redis()
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: RedisCluster) -> str:
    """The URL of a node of an empty Redis Cluster."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty Redis."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill and start again."""
    need_redis()
    server = RedisServer(tmp_path / "redis")
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Starlette, str]]:
    with running_upstream() as found:
        yield found


@pytest.fixture
def origin(upstream: tuple[Starlette, str]) -> str:
    upstream[0].state.drift = set()
    upstream[0].state.seen.clear()
    return upstream[1]


def served_while_held(
    monkeypatch: pytest.MonkeyPatch, owner: Any, method: str, base_url: str, slow: Callable[[], httpx.Response]
) -> httpx.Response:
    """Hold ``owner.method`` (in whatever thread calls it) until the server has answered a
    health check, then let go; ``slow()`` runs meanwhile in a thread of its own and is
    returned. A server whose event loop runs the held method never answers the check,
    whatever the machine's speed (the timeouts only end a test that has already failed)."""
    started, release = threading.Event(), threading.Event()
    original = getattr(owner, method)

    def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, method, held)
    answers: list[httpx.Response] = []
    request = threading.Thread(target=lambda: answers.append(slow()))
    request.start()
    try:
        assert started.wait(60), f"{method} was never called"
        health = httpx.get(base_url + "/_sfmock/health", timeout=30)
        assert health.status_code == 200
    finally:
        release.set()
        request.join(120)
    return answers[0]
