"""sfmock's benchmarks: one table of figures, each beside a baseline measured in the same run.

Run from the repository root, in the environment sfmock is installed in:

    python bench/run.py            # about eight minutes
    python bench/run.py --quick    # shorter runs, rougher figures

Load comes from ``wrk`` (Debian package ``wrk``) when it is on the PATH, else the
section says it was skipped. Exits non-zero only if the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the demo clients
sys.path.insert(0, str(HERE))

from redis_cpu import bench_redis_cpu, generation_scope  # noqa: E402
from stacks import bench_redis_load, bench_wiremock, bench_workers  # noqa: E402

BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn", "seed": 42}
AUTH = {"Authorization": "Bearer sk-bench-0123456789"}
ROWS: list[tuple[str, str, str, str, str]] = []


def row(section: str, what: str, value: str, baseline: str = "", ratio: str = "") -> None:
    ROWS.append((section, what, value, baseline, ratio))
    print(f"  {section:<10} {what:<44} {value:>14} {baseline:>14} {ratio:>8}", file=sys.stderr, flush=True)


@contextmanager
def process(*args: str, ready: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A server process; yields it and the first stderr line matching ``ready``."""
    proc = subprocess.Popen([sys.executable, *args], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = ""
        while ready not in line:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"{args} exited: {proc.returncode}")
        yield proc, line
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()


def wrk(
    url: str,
    connections: int,
    seconds: float,
    script: Path | None = None,
    threads: int = 1,
    warmup: int = 1,
    pid: int | None = None,
) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) from one wrk run, after a short warm-up; the
    share of the machine's CPU left idle meanwhile (``idle``: 0 means every core was busy,
    ours or other work's); with ``pid``, also the CPU time (µs) that server process and
    its children (the workers of ``--workers``) spent per request answered."""
    base = ["wrk", f"-t{threads}", f"-c{connections}", "--latency"] + (["-s", str(script)] if script else [])
    subprocess.run([*base, f"-d{warmup}s", url], capture_output=True, text=True, check=True)  # warm-up
    before, idle_before = cpu_seconds(pid) if pid is not None else 0.0, machine_ticks()
    out = subprocess.run([*base, f"-d{seconds}s", url], capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before if pid is not None else 0.0
    idle, total = (after - first for after, first in zip(machine_ticks(), idle_before, strict=True))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    answered = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    percentiles = {p: _ms(re.search(rf"^\s+{p}%\s+(\S+)", out, re.M).group(1)) for p in ("50", "99")}  # type: ignore[union-attr]
    return {
        "rps": rate,
        "p50": percentiles["50"],
        "p99": percentiles["99"],
        "errors": float(errors.group(1)) if errors else 0,
        "cpu_us": used / max(1, answered) * 1e6,
        "idle": idle / total if total else 0.0,
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process and its live children have used (Linux
    ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # a kernel without the list: the process alone
        children = []
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def machine_ticks() -> tuple[int, int]:
    """(idle, total) CPU ticks of the whole machine since boot (Linux ``/proc``; zeros elsewhere)."""
    try:
        ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    return ticks[3] + ticks[4], sum(ticks)  # idle and iowait: a core with nothing to run


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _median_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: median(run[key] for run in runs) for key in runs[0]}


def bench_generation(seconds: int, rounds: int, workdir: Path) -> None:
    """sfmock and the bare endpoint, both up at once and measured in turns (``rounds`` times
    each at 32 connections: medians), so a machine busy with other work weighs on both."""
    config = workdir / "bench.yaml"
    config.write_text(
        "limits: {rpm: 1000000000, ipm: 1000000000, ipd: 1000000000}\nseed: 1\ndefault_balance: 1000000000\n"
    )
    serve = ("-m", "sfmock", "serve", "--port", "0", "--config", str(config), "--log-level", "warning")
    with process(*serve, ready="API at") as (ours_proc, line):
        url = re.search(r"(http://\S+)/v1", line).group(1)  # type: ignore[union-attr]
        sample = httpx.post(f"{url}/v1/images/generations", json=BODY, headers=AUTH)
        assert sample.status_code == 200, sample.text
        (workdir / "body.json").write_bytes(sample.content)
        pngs = {}
        for size in ("1024x1024", "1328x1328"):
            model = "Kwai-Kolors/Kolors" if size == "1024x1024" else "Qwen/Qwen-Image"
            image_url = httpx.post(
                f"{url}/v1/images/generations", json={**BODY, "model": model, "image_size": size}, headers=AUTH
            ).json()["images"][0]["url"]
            (workdir / f"{size}.png").write_bytes(httpx.get(image_url).content)
            pngs[size] = image_url
        script = workdir / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "{AUTH["Authorization"]}"\n'
        )
        png_args = [f"{size}={workdir / f'{size}.png'}" for size in pngs]
        baseline = (str(HERE / "baseline_app.py"), "0", str(workdir / "body.json"), *png_args)
        with (
            process(*baseline, ready="baseline on") as (base_proc, base_line),
            process(str(HERE / "ceiling_app.py"), "0", ready="ceiling on") as (_, ceiling_line),
        ):
            port = base_line.split()[2]
            ceiling_url = f"http://127.0.0.1:{ceiling_line.split()[2]}/"
            stack = base_line.split(" ", 3)[3].strip()
            ours_url, base_url = f"{url}/v1/images/generations", f"http://127.0.0.1:{port}/generate"
            ours = {1: wrk(ours_url, 1, seconds, script)}
            base = {1: wrk(base_url, 1, seconds, script)}
            ours_runs, base_runs, ceiling_runs = [], [], []
            downloads: dict[str, list[float]] = {size: [] for size in pngs}
            base_downloads: dict[str, list[float]] = {size: [] for size in pngs}
            for _ in range(rounds):
                ours_runs.append(wrk(ours_url, 32, seconds, script, pid=ours_proc.pid))
                base_runs.append(wrk(base_url, 32, seconds, script, pid=base_proc.pid))
                ceiling_runs.append(wrk(ceiling_url, 32, seconds, script))
                for size, image_url in pngs.items():
                    downloads[size].append(wrk(image_url, 32, seconds)["rps"])
                    base_downloads[size].append(wrk(f"http://127.0.0.1:{port}/image/{size}", 32, seconds)["rps"])
            ours[32], base[32] = _median_runs(ours_runs), _median_runs(base_runs)
        journal = httpx.get(f"{url}/_sfmock/health").json()["journal"]
    print(f"  baseline: bare Starlette on uvicorn ({stack}); 32-connection rows: median of {rounds}", file=sys.stderr)
    for c in (1, 32):
        row(
            "generate",
            f"requests/s, {c} connection(s)" + (" (target 70%)" if c == 32 else ""),
            f"{ours[c]['rps']:.0f}",
            f"{base[c]['rps']:.0f}",
            f"{ours[c]['rps'] / base[c]['rps']:.0%}",
        )
        row(
            "generate",
            f"p50 latency ms, {c} connection(s)",
            f"{ours[c]['p50']:.2f}",
            f"{base[c]['p50']:.2f}",
            f"{ours[c]['p50'] / base[c]['p50']:.2f}x",
        )
        row(
            "generate",
            f"p99 latency ms, {c} connection(s)" + (" (target 2x)" if c == 32 else ""),
            f"{ours[c]['p99']:.2f}",
            f"{base[c]['p99']:.2f}",
            f"{ours[c]['p99'] / base[c]['p99']:.2f}x",
        )
    if base[32]["cpu_us"] and ours[32]["cpu_us"]:  # /proc: Linux only
        row(
            "generate",
            "server CPU µs per request, 32 connections (bare / ours)",
            f"{ours[32]['cpu_us']:.1f}",
            f"{base[32]['cpu_us']:.1f}",
            f"{base[32]['cpu_us'] / ours[32]['cpu_us']:.0%}",
        )
    ceiling = _median_runs(ceiling_runs)["rps"]
    row(
        "generate",
        "requests/s, sfmock's own work alone (ceiling_app)",
        f"{ceiling:.0f}",
        f"{base[32]['rps']:.0f}",
        f"{ceiling / base[32]['rps']:.0%}",
    )
    errors = ours[1]["errors"] + sum(run["errors"] for run in ours_runs)
    row("generate", "non-2xx answers under load", f"{errors:.0f}", "0")
    row("generate", "journal entries kept (bounded)", str(journal), "1000")
    for size in pngs:
        mine, theirs = median(downloads[size]), median(base_downloads[size])
        row(
            "download",
            f"{size} PNG downloads/s, 32 connections (target 50%)",
            f"{mine:.0f}",
            f"{theirs:.0f}",
            f"{mine / theirs:.0%}",
        )
    bench_wiremock(wrk, row, (workdir / "body.json").read_bytes(), script, seconds, ours[32]["rps"])
    bench_workers(process, wrk, row, config, script, seconds)
    bench_redis_load(process, wrk, row, config, script, seconds, rounds)


def bench_inprocess(rounds: int) -> None:
    """CPU time of one generation through the whole app, no socket: steady on a busy machine."""
    import asyncio
    from decimal import Decimal

    from sfmock import Settings, VirtualClock, create_app

    app = create_app(Settings(seed=1, default_balance=Decimal("1000000000")), clock=VirtualClock())
    body = json.dumps(BODY).encode()
    scope = generation_scope()

    async def one() -> None:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            assert message.get("status", 200) == 200, message

        await app({**scope, "state": {}}, receive, send)

    async def run() -> list[float]:
        for _ in range(200):
            await one()
        times = []
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(500):
                await one()
            times.append((time.process_time() - started) / 500)
        return times

    row(
        "inprocess",
        f"generation CPU per request, no socket (median µs of {rounds})",
        f"{median(asyncio.run(run())) * 1e6:.0f}",
    )


def bench_render() -> None:
    from sfmock.imaging import forget_renders, render_png

    for width, height in ((1024, 1024), (1328, 1328)):
        times = []
        for i in range(30):
            forget_renders()
            began = time.perf_counter()
            render_png(str(i).encode(), width, height)
            times.append(time.perf_counter() - began)
        row("render", f"{width}x{height} PNG, uncached (median ms)", f"{median(times) * 1000:.2f}")


def bench_startup(workdir: Path) -> None:
    began = time.perf_counter()
    with process("-m", "sfmock", "serve", "--port", "0", "--log-level", "warning", ready="API at") as (_, line):
        url = re.search(r"(http://\S+)/v1", line).group(1)  # type: ignore[union-attr]
        while True:
            try:
                if httpx.get(f"{url}/v1/models", headers=AUTH).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.005)
        elapsed = time.perf_counter() - began
    row("startup", "sfmock serve to first 200 (s)", f"{elapsed:.2f}", "1.00 target")
    probe = "import time; import sfmock; t=time.perf_counter(); sfmock.create_app(); print(time.perf_counter()-t)"
    cold = float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    from sfmock import create_app

    create_app()
    began = time.perf_counter()
    for _ in range(100):
        create_app()
    warm = (time.perf_counter() - began) / 100
    row("startup", "create_app, first in a process (ms)", f"{cold * 1000:.1f}", "100 target")
    row("startup", "create_app, contract already loaded (ms)", f"{warm * 1000:.2f}")


def bench_memory(urls: int) -> None:
    out = subprocess.run(
        [sys.executable, str(HERE / "memory_probe.py"), str(urls)], capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(out)
    grown = figures["after_mb"] - figures["idle_mb"]
    row(
        "memory",
        f"RSS after issuing {figures['urls']:,} live URLs (MB)",
        f"{figures['after_mb']:.1f}",
        f"{figures['idle_mb']:.1f} idle",
        f"+{grown:.1f}",
    )


def bench_checks(examples: int, catalogue: bool) -> None:
    """Schedules per second for a simple and a careful client; the catalogue's verdicts."""
    from demo_clients import careful_generate

    from sfmock.checks import ClientCheckFailed, ClientContext, check_client

    def simple(ctx: ClientContext) -> bytes:
        with ctx.http_client() as http:
            body = http.post(
                f"{ctx.base_url}/images/generations",
                json=ctx.request,
                headers={"Authorization": f"Bearer {ctx.api_key}"},
            ).json()
            return http.get(body["images"][0]["url"]).content

    from catalogue.modern_clients import (
        asyncio_timeout_per_attempt,
        httpx_stream_download,
        sync_around_asyncio_run,
        sync_around_trio_run,
    )

    from sfmock.strategies import drawn_outcomes

    # two of the four ways bound the generation only, and a stalled download hangs them (a flaw
    # `download-timeout` finds): the rows measure the check's speed, so that outcome is left out
    stall_free = [outcome for outcome in drawn_outcomes() if outcome != "download-timeout"]
    for name, client, invariants in (
        ("simple client", simple, ["valid-requests", "downloads", "same-body"]),
        ("careful client", careful_generate, None),
        # the same retries and streamed download, run four ways: within 2x of each other (issue 23)
        ("sync httpx, streamed download", httpx_stream_download, None),
        ("async def, asyncio.timeout", asyncio_timeout_per_attempt, None),
        ("sync around asyncio.run", sync_around_asyncio_run, None),
        ("sync around trio.run, fail_after", sync_around_trio_run, None),
    ):
        began, cpu = time.perf_counter(), time.process_time()
        report = check_client(client, invariants=invariants, outcomes=stall_free, max_examples=examples, seed=1)
        rate = report.examples / (time.perf_counter() - began)
        # by CPU: the steadier figure when other processes share the machine
        cpu_rate = report.examples / (time.process_time() - cpu)
        row("checks", f"schedules/s in-process, {name}", f"{rate:.0f}", "300 target")
        row("checks", f"schedules/s by CPU time, {name}", f"{cpu_rate:.0f}", "300 target")
    if not catalogue:
        return
    from catalogue.test_catalogue import CORRECT, FLAWED, LIVE, OPTIONS

    caught = accused = 0
    began = time.perf_counter()
    for client, invariant in FLAWED.items():
        try:
            check_client(client, seed=1, max_examples=60, **OPTIONS.get(client, {}))
        except ClientCheckFailed as failure:
            caught += failure.invariant == invariant
    for client in CORRECT:
        try:
            check_client(client, seed=1, max_examples=60, **OPTIONS.get(client, {}))
        except ClientCheckFailed:
            accused += 1
    row("checks", f"catalogue: flawed clients caught by their invariant (of {len(FLAWED)})", f"{caught}")
    row("checks", f"catalogue: correct clients accused (of {len(CORRECT)})", f"{accused}")
    live = sum(1 for c in (*FLAWED, *CORRECT) if c in LIVE)
    row(
        "checks",
        f"catalogue: seconds for {len(FLAWED) + len(CORRECT)} checks ({live} live)",
        f"{time.perf_counter() - began:.0f}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--load-only", action="store_true", help="only the rows measured with wrk")
    parser.add_argument("--rounds", type=int, default=3, help="runs at 32 connections, each side (median)")
    parser.add_argument("--checks-only", action="store_true", help="only the check_client rows (catalogue included)")
    args = parser.parse_args()
    seconds = 3 if args.quick else 10
    rounds = max(1, args.rounds)
    print(f"  {'section':<10} {'figure':<44} {'sfmock':>14} {'baseline':>14} {'ratio':>8}", file=sys.stderr)
    if args.checks_only:
        bench_checks(200 if args.quick else 1000, catalogue=not args.quick)
        return _table()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if shutil.which("wrk"):
            bench_generation(seconds, rounds, workdir)
        else:
            row("generate", "skipped: wrk is not installed (apt-get install wrk)", "-")
        if args.load_only:
            return _table()
        bench_inprocess(5 if args.quick else 15)
        if shutil.which("redis-server"):
            bench_redis_cpu(row, 5 if args.quick else 15)
        else:
            row("redis", "skipped: redis-server is not installed", "-")
        bench_render()
        bench_startup(workdir)
        bench_memory(20_000 if args.quick else 100_000)
        bench_checks(200 if args.quick else 1000, catalogue=not args.quick)
    return _table()


def _table() -> int:
    print("\n| section | figure | sfmock | baseline | ratio |\n|---|---|---|---|---|")
    for cells in ROWS:
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
