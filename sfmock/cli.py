"""The ``sfmock`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
from collections.abc import Sequence

from .errors import ConfigError

__all__ = ["main"]

_FLAGS = {
    "host": "--host",
    "port": "--port",
    "seed": "--seed",
    "url_ttl": "--url-ttl",
    "public_url": "--public-url",
    "strict": "--strict",
    "max_body_bytes": "--max-body-bytes",
    "limits": "--limits",
    "rate_limit_headers": "--rate-limit-headers",
    "scenario": "--scenario",
    "control_token": "--control-token",
    "journal_size": "--journal-size",
    "frozen_clock": "--frozen-clock",
    "dialect": "--dialect",
    "balance_status": "--balance-status",
    "image_prefix": "--image-prefix",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfmock",
        description="An offline, faithful fake of the SiliconFlow image-generation API.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the fake server",
        description="Run the fake API and image host. Flags override the config file.",
    )
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1: loopback only)")
    serve.add_argument("--port", type=int, help="TCP port, 0 for any free one (default 8000)")
    serve.add_argument("--config", metavar="FILE", help="YAML config file (see README)")
    serve.add_argument("--seed", type=int, help="seed every random draw, for repeatable runs")
    serve.add_argument("--url-ttl", type=int, metavar="S", help="image URL lifetime in seconds (default 3600)")
    serve.add_argument("--public-url", metavar="URL", help="base URL written into image URLs")
    serve.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reject fields the model ignores (default: accept and ignore, like the real API)",
    )
    serve.add_argument("--max-body-bytes", type=int, metavar="N", help="request body limit (default 8 MiB)")
    serve.add_argument(
        "--limits",
        metavar="PRESET",
        help="rate limits of every account: 'realistic' (IPM 2, IPD 400) or 'unlimited' (default)",
    )
    serve.add_argument(
        "--rate-limit-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send Retry-After and x-ratelimit-* headers (the real service sends none)",
    )
    serve.add_argument(
        "--scenario", metavar="FILE", help="chaos scenario: a file, or a shipped name (flaky, overloaded, ...)"
    )
    serve.add_argument("--control-token", metavar="TOKEN", help="token the control API /_sfmock/ requires")
    serve.add_argument("--journal-size", type=int, metavar="N", help="requests the journal keeps (default 1000)")
    serve.add_argument(
        "--frozen-clock",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stop the clock; move it with POST /_sfmock/clock",
    )
    serve.add_argument(
        "--dialect",
        metavar="DIALECT",
        help="error bodies as the reference page words them ('documented', default) or the live service ('observed')",
    )
    serve.add_argument(
        "--balance-status",
        type=int,
        metavar="S",
        help="status of code 30001, insufficient balance: 403 (default) or 402",
    )
    serve.add_argument("--image-prefix", metavar="PATH", help="path of image URLs (default /temporary/outputs/)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse requires a command


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .config import load_settings
    from .server import listen

    overrides = {key: getattr(args, key) for key in _FLAGS}
    try:
        settings = load_settings(args.config, overrides, flag_names=_FLAGS)
        sock = listen(settings.host, settings.port)
    except ConfigError as exc:
        print(f"sfmock: error: {exc}", file=sys.stderr)
        return 2
    # with --port 0 the kernel picks the port: image URLs must name the real one
    settings = dataclasses.replace(settings, port=sock.getsockname()[1])
    app = create_app(settings)
    # everything loaded so far (modules, the contract, validators) lives as long as the
    # process: keep it out of the collector's full passes, which otherwise stall requests
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(app, log_level=args.log_level, timeout_graceful_shutdown=2)
    print(f"sfmock: API at {settings.base_url}/v1 (Ctrl+C to stop)", file=sys.stderr, flush=True)
    if app.state.control.token is not None and settings.control_token is None:
        print(f"sfmock: control API token: {app.state.control.token}", file=sys.stderr, flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
