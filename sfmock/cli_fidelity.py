"""The commands that tie the fake to the real service: ``proxy``, ``drift`` and
``contract diff`` (``serve --replay`` is a flag of ``serve``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sfmock.errors import ConfigError
from sfmock.untrusted import Untrusted, read_environment
from sfmock.wording import plural

__all__ = ["add_commands", "run"]

COST_FLAG = "--confirm-cost"
KEY_ENV = "SILICONFLOW_API_KEY"


def add_commands(commands: Any) -> None:
    """Add ``proxy``, ``drift`` and ``contract`` to the CLI's subparsers."""
    proxy = commands.add_parser(
        "proxy",
        help="forward the API to the real service, check and record what it answers",
        description="Forward /v1/ to the real service with the caller's key, check every answer against the "
        "contract, and report drift at exit (exit status 1 when there was any).",
    )
    proxy.add_argument(
        "--upstream", required=True, metavar="URL", help="the real service, e.g. https://api.siliconflow.cn"
    )
    proxy.add_argument("--record", metavar="DIR", help="write each exchange there, secrets scrubbed")
    proxy.add_argument(
        "--downloads",
        action="store_true",
        help="also route image downloads through the proxy (rewrites image URLs in answers to the proxy)",
    )
    proxy.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: loopback only)")
    proxy.add_argument("--port", type=int, default=8000, help="TCP port, 0 for any free one (default 8000)")
    proxy.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    proxy.add_argument(
        "--read-timeout",
        type=_positive(float),
        default=15.0,
        metavar="S",
        help="seconds a client may take to send a whole request (default 15, as serve)",
    )
    proxy.add_argument(
        "--max-body-bytes",
        type=_positive(int),
        default=8 * 1024 * 1024,
        metavar="N",
        help="larger request bodies answer 413 (default 8 MiB, as serve)",
    )
    proxy.add_argument(
        "--image-origin",
        action="append",
        default=[],
        metavar="URL",
        help="with --downloads: another origin image URLs may name (repeatable; the upstream's and the real "
        "service's object stores always may)",
    )

    drift = commands.add_parser(
        "drift",
        help="check recordings (or, with --against, the real service) against the contract",
        description="Report where recorded answers, or a few real calls, disagree with the contract. "
        "Exit status 0: no drift; 1: drift; 2: bad input or a refused real run.",
    )
    drift.add_argument("recordings", nargs="*", metavar="DIR", help="folders or files of recordings")
    drift.add_argument("--against", metavar="URL", help="make a small fixed set of REAL, PAID calls to this service")
    drift.add_argument(COST_FLAG, action="store_true", help="go ahead with the paid calls of --against")
    drift.add_argument(
        "--key-env", default=KEY_ENV, metavar="NAME", help=f"variable holding the key (default {KEY_ENV})"
    )
    drift.add_argument("--record", metavar="DIR", help="with --against: keep the exchanges there, secrets scrubbed")

    contract = commands.add_parser("contract", help="work with contract versions")
    actions = contract.add_subparsers(dest="contract_command", required=True, metavar="ACTION")
    diff = actions.add_parser(
        "diff",
        help="what a client built on OLD would break on under NEW",
        description="List the changes from OLD to NEW that break a client of OLD. Exit status 1 when any. "
        "OLD and NEW are OpenAPI documents (YAML or JSON files), e.g. an earlier contracts/openapi.yaml "
        "taken from git (git show REV:contracts/openapi.yaml > old.yaml) and today's.",
    )
    diff.add_argument("old", metavar="OLD", help="the contract a client was built on (an OpenAPI file)")
    diff.add_argument("new", metavar="NEW", help="the contract it now meets (an OpenAPI file)")


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__} above 0, got {text!r}") from None
        if not 0 < value < float("inf"):  # NaN fails this too
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__} above 0, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def run(args: argparse.Namespace) -> int | None:
    """Run one of these commands; ``None`` when ``args`` names another."""
    handlers = {"proxy": _proxy, "drift": _drift, "contract": _contract}
    handler = handlers.get(args.command)
    if handler is None:
        return None
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"sfmock: error: {exc}", file=sys.stderr)
        return 2


def _proxy(args: argparse.Namespace) -> int:
    import uvicorn

    from sfmock.fidelity.drift import format_report
    from sfmock.fidelity.proxy import create_proxy
    from sfmock.fidelity.proxy_guard import REAL_IMAGE_ORIGINS, origin_of
    from sfmock.protocol import uvicorn_config
    from sfmock.server import listen

    for url in args.image_origin:
        if origin_of(url) is None:
            raise ConfigError("--image-origin", "image-origin", f"expected an http(s) origin, got {url!r}")
    app = create_proxy(
        args.upstream,
        record=args.record,
        downloads=args.downloads,
        max_body_bytes=args.max_body_bytes,
        host_names={"localhost", "127.0.0.1", args.host},
        image_origins=(*REAL_IMAGE_ORIGINS, *args.image_origin),
    )
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    origin = app.state.proxy.origin
    print(f"sfmock: proxy at http://{host}:{port}/v1 -> {origin}/v1 (Ctrl+C to stop)", file=sys.stderr, flush=True)
    config = uvicorn_config(app, log_level=args.log_level, read_timeout=args.read_timeout, timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C once it has shut down: report, then exit
        pass
    drifts = app.state.proxy.log.drifts()
    print(format_report(drifts), flush=True)
    return 1 if drifts else 0


def _drift(args: argparse.Namespace) -> int:
    from sfmock.contract.openapi import load_contract
    from sfmock.fidelity.drift import check_exchanges, format_report
    from sfmock.fidelity.recording import load_recordings

    if bool(args.recordings) == bool(args.against):
        raise ConfigError("command line", "drift", "expected recordings (DIR ...) or --against URL, not both")
    contract = load_contract()
    if args.against:
        exchanges = _against(args, contract)
        if exchanges is None:
            return 2
    else:
        exchanges = [e for location in args.recordings for e in load_recordings(location)]
    drifts = check_exchanges(exchanges, contract)
    print(f"checked {plural(len(exchanges), 'exchange')}")
    print(format_report(drifts))
    return 1 if drifts else 0


def _against(args: argparse.Namespace, contract: Any) -> list[Any] | None:
    import httpx

    from sfmock.fidelity.canary import describe, plan, run_plan
    from sfmock.fidelity.proxy import upstream_origin
    from sfmock.fidelity.recording import write_recording

    origin = upstream_origin(args.against, "--against")
    calls = plan(contract)
    print(describe(calls, origin), flush=True)
    if not args.confirm_cost:
        print(f"sfmock: not calling anything: add {COST_FLAG} to make these calls", file=sys.stderr)
        return None
    try:
        key = read_environment(args.key_env)
    except Untrusted as exc:
        raise ConfigError("environment", args.key_env, exc.problem) from None
    if not key:
        raise ConfigError("environment", args.key_env, "expected the API key of the real service")
    try:
        exchanges = run_plan(calls, origin, key)
    except httpx.HTTPError as exc:
        print(f"sfmock: error: {origin}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    if args.record:
        for index, exchange in enumerate(exchanges, 1):
            write_recording(Path(args.record), index, exchange, [key])
    return exchanges


def _contract(args: argparse.Namespace) -> int:
    from sfmock.errors import ContractError
    from sfmock.fidelity.contractdiff import diff_contracts, format_breaks, read_contract

    try:
        breaks = diff_contracts(read_contract(args.old), read_contract(args.new))
    except ContractError as exc:
        raise ConfigError(f"{args.old} / {args.new}", "$ref", str(exc)) from None
    print(format_breaks(breaks))
    return 1 if breaks else 0
