"""The ``sfmock`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import re
import signal
import socket
import sys
import warnings
from asyncio import CancelledError
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from sfmock.cli_check import add_check_parser, check
from sfmock.cli_fidelity import add_commands as add_fidelity_commands
from sfmock.cli_fidelity import run as run_fidelity_command
from sfmock.cli_values import check_arguments
from sfmock.errors import ConfigError
from sfmock.wording import did_you_mean, plural

if TYPE_CHECKING:
    from sfmock.config import Settings

__all__ = ["main"]

_FLAGS = {
    "host": "--host",
    "port": "--port",
    "seed": "--seed",
    "url_ttl": "--url-ttl",
    "public_url": "--public-url",
    "image_port": "--image-port",
    "image_public_url": "--image-public-url",
    "strict": "--strict",
    "max_body_bytes": "--max-body-bytes",
    "limits": "--limits",
    "rate_limit_headers": "--rate-limit-headers",
    "scenario": "--scenario",
    "control_token": "--control-token",
    "journal_size": "--journal-size",
    "journal_max_bytes": "--journal-max-bytes",
    "control_max_body_bytes": "--control-max-body-bytes",
    "read_timeout": "--read-timeout",
    "max_open_accounts": "--max-open-accounts",
    "frozen_clock": "--frozen-clock",
    "replay": "--replay",
    "replay_match": "--replay-match",
    "replay_miss": "--replay-miss",
    "dialect": "--dialect",
    "balance_status": "--balance-status",
    "image_prefix": "--image-prefix",
    "store": "--store",
}


class _Parser(argparse.ArgumentParser):
    """argparse, with "did you mean" for a misspelt command, choice or flag (its
    subcommands' parsers are of this class too: argparse makes them of the parent's)."""

    def error(self, message: str) -> NoReturn:
        chosen = re.search(r"invalid choice: '?(.*?)'? \(choose from (.*)\)$", message)
        if chosen:
            hint = did_you_mean(chosen[1], (c.strip("'\" ") for c in chosen[2].split(",")))
            message += f"; {hint}" if hint else ""
        elif message.startswith("unrecognized arguments: "):
            flags = [word.partition("=")[0] for word in message.split()[2:] if word.startswith("--")]
            hints = [did_you_mean(flag, self._option_string_actions) for flag in flags]
            message += "".join(f"; {flag}: {hint}" for flag, hint in zip(flags, hints, strict=True) if hint)
        super().error(message)


# subcommands: name -> (add its arguments, run it); another one is another entry
Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str, str]


def build_parser() -> argparse.ArgumentParser:
    """The ``sfmock`` parser, with one subparser per entry of :data:`COMMANDS`."""
    from sfmock._version import __version__

    parser = _Parser(
        prog="sfmock",
        description="An offline, faithful fake of the SiliconFlow image-generation API.",
    )
    parser.add_argument("--version", action="version", version=f"sfmock {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (arguments, _, summary, description) in COMMANDS.items():
        arguments(commands.add_parser(name, help=summary, description=description))
    add_fidelity_commands(commands)
    add_check_parser(commands)
    return parser


def _serve_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1: loopback only)")
    serve.add_argument("--port", type=int, help="TCP port, 0 for any free one (default 8000)")
    serve.add_argument("--config", metavar="FILE", help="YAML config file (see docs/configuration.md)")
    serve.add_argument("--seed", type=int, help="seed every random draw, for repeatable runs")
    serve.add_argument("--url-ttl", type=int, metavar="S", help="image URL lifetime in seconds (default 3600)")
    serve.add_argument("--public-url", metavar="URL", help="base URL of the API as clients reach it (behind a proxy)")
    serve.add_argument(
        "--image-port",
        type=_port_or_word,
        metavar="PORT",
        help="port of the image host, an origin of its own (default: --port + 1; 0: a free one; "
        "'same': the images on the API's origin)",
    )
    serve.add_argument("--image-public-url", metavar="URL", help="base URL written into image URLs")
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
        "--journal-max-bytes", type=int, metavar="N", help="request-body bytes the journal holds (default 16 MiB)"
    )
    serve.add_argument(
        "--control-max-body-bytes", type=int, metavar="N", help="control API body limit (default 256 KiB)"
    )
    serve.add_argument(
        "--read-timeout",
        type=float,
        metavar="S",
        help="seconds a client may take to send a whole request before it is cut off (default 15)",
    )
    serve.add_argument(
        "--max-open-accounts",
        type=int,
        metavar="N",
        help="tokens whose usage and balance are kept without configured accounts (default 10000)",
    )
    serve.add_argument(
        "--frozen-clock",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stop the clock; move it with POST /_sfmock/clock",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level: 'info' logs each request, 'warning' only problems (default info)",
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
    serve.add_argument(
        "--store",
        metavar="URL",
        help="where state lives: memory (default) or redis://HOST:PORT/DB, shared by every worker and host",
    )
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N", help="processes serving the port (more than 1 needs --store)"
    )
    _add_replay_flags(serve)


def _listen_for_images(host: str, port: int, *, defaulted: bool) -> socket.socket:
    """The image host's socket; when the default port (the API's + 1) is taken, say how to choose."""
    from sfmock.server import listen

    try:
        return listen(host, port, "--image-port")
    except ConfigError as exc:
        if not defaulted:
            raise
        hint = "; it is the default (--port + 1): choose one with --image-port, or --image-port same for one origin"
        raise ConfigError(exc.source, exc.key, exc.expected + hint) from None


def _port_or_word(text: str) -> int | str:
    """A port number as a number; anything else as given, for the config schema to judge."""
    return int(text) if text.isdigit() else text


def _add_replay_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--replay", metavar="DIR", help="answer matching generations from recordings (sfmock proxy)")
    serve.add_argument("--replay-match", metavar="HOW", help="prompt (model and prompt, default) or exact (whole body)")
    serve.add_argument("--replay-miss", metavar="WHAT", help="fake (default: the fake answers) or error (404)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 on Ctrl+C, 2 on a usage or config error)."""
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:  # the subcommand's usage, not the top level's
            chooser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            chooser.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        try:
            check_arguments(parser, args)
        except ConfigError as exc:
            print(f"sfmock: error: {exc}", file=sys.stderr)
            return 2
        if args.command in COMMANDS:
            run: Callable[[argparse.Namespace], int] = COMMANDS[args.command][1]
            return run(args)
        if args.command == "check":
            return check(args)
        status = run_fidelity_command(args)
        return 2 if status is None else status
    except (KeyboardInterrupt, CancelledError):  # Ctrl+C, at any moment (during uvicorn's start-up
        # a second one cancels its loop instead, or cuts a loop half-built, whose clean-up would
        # then print a warning at exit): a normal way to stop, said nothing about
        sys.unraisablehook = lambda unraisable: None
        warnings.simplefilter("ignore", RuntimeWarning)
        return 0
    except BrokenPipeError:  # the reader went away (sfmock scenarios | head -1): quietly, as other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1


def serve(args: argparse.Namespace) -> int:
    """``sfmock serve``: run the fake until Ctrl+C."""
    from sfmock.app import create_app, serving_secrets
    from sfmock.config import load_settings
    from sfmock.heap import keep_freed_memory
    from sfmock.protocol import uvicorn_config
    from sfmock.server import PromptServer, listen, server_stack

    keep_freed_memory()  # this process is the server's own: big bodies reuse freed memory
    # Ctrl+C while starting stops the server once it is up, even where SIGINT came in ignored
    # (a background job of a script, a test runner's worker): uvicorn only takes it at start
    stopping: list[int] = []
    signal.signal(signal.SIGINT, lambda sig, frame: stopping.append(sig))
    overrides = {key: getattr(args, key) for key in _FLAGS}
    sockets = []
    try:
        settings = load_settings(args.config, overrides, flag_names=_FLAGS)
        _check_workers(args.workers, settings.store)
        given = args.store is not None or args.config is None
        _check_store(settings.store, *(("command line", "--store") if given else (str(args.config), "store")))
        image_port = settings.image_socket_port  # None: one origin; 0 with --port 0
        sockets.append(listen(settings.host, settings.port))
        if image_port is not None:  # the image host, on an origin of its own
            sockets.append(_listen_for_images(settings.host, image_port, defaulted=settings.image_port is None))
        # with port 0 the kernel picks the port: image URLs must name the real one
        ports = [sock.getsockname()[1] for sock in sockets]
        settings = dataclasses.replace(
            settings, port=ports[0], image_port=ports[-1] if image_port is not None else "same"
        )
    except ConfigError as exc:
        for sock in sockets:
            sock.close()
        print(f"sfmock: error: {exc}", file=sys.stderr)
        return 2
    token_given = settings.control_token is not None
    if args.workers > 1:  # one signing key and control token for all of them
        key, token = serving_secrets(settings)
        settings = dataclasses.replace(settings, signing_key=key, control_token=token)
    app = create_app(settings)
    print(f"sfmock: API at {settings.base_url}/v1 (Ctrl+C to stop)", file=sys.stderr, flush=True)
    if settings.public_url is not None:  # the public URL hides the port --port 0 chose: name it too
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        print(f"sfmock: listening on http://{host}:{settings.port}", file=sys.stderr, flush=True)
    if app.state.control.token is not None and not token_given:
        print(f"sfmock: control API token: {app.state.control.token}", file=sys.stderr, flush=True)
    where = "the API's origin" if settings.image_base_url == settings.base_url else "an origin of their own"
    print(f"sfmock: images at {settings.image_base_url}{settings.image_prefix} ({where})", file=sys.stderr, flush=True)
    print(f"sfmock: page at {settings.base_url}/_sfmock/", file=sys.stderr, flush=True)
    if settings.replay is not None:
        print(f"sfmock: {_replay_line(settings, args.replay)}", file=sys.stderr, flush=True)
    config = uvicorn_config(
        app, log_level=args.log_level, read_timeout=settings.read_timeout, timeout_graceful_shutdown=2
    )
    processes = "one process" if args.workers == 1 else f"{args.workers} processes"
    print("sfmock: serving with {} and {}, ".format(*server_stack(config)) + processes, file=sys.stderr, flush=True)
    if args.workers > 1:
        from sfmock.workers import run_workers

        print(f"sfmock: {args.workers} workers sharing {app.state.store.url}", file=sys.stderr, flush=True)
        app.state.store.close()
        if stopping:
            return 0
        return run_workers(settings, sockets, workers=args.workers, log_level=args.log_level)
    # everything loaded so far (modules, the contract, validators) lives as long as the
    # process: keep it out of the collector's full passes, which otherwise stall requests
    gc.collect()
    gc.freeze()
    server = PromptServer(config)
    signal.signal(signal.SIGINT, server.handle_exit)
    if stopping:
        return 0
    server.run(sockets=sockets)
    return 0


def _replay_line(settings: Settings, folder: str | None) -> str:
    """That replay is on, what it loaded and what a request it cannot match gets: a folder
    with no recorded generation would otherwise look like a replay that never matches."""
    from sfmock.fidelity.replay import Recordings

    exchanges = settings.replay or ()
    recordings = Recordings(exchanges, settings.replay_match)
    answers, downloads = len(recordings.generations), len(recordings.downloads)
    how = "the whole request body" if settings.replay_match == "exact" else "model and prompt"
    miss = "the fake's answer" if settings.replay_miss == "fake" else "a 404 naming the closest recording"
    source = folder or "the config's replay folder"
    line = (
        f"replay on: {plural(len(exchanges), 'recording')} loaded from {source} "
        f"({plural(answers, 'generation')} to answer, {plural(downloads, 'download')}), matched by {how}; "
        f"a request none matches gets {miss}"
    )
    return line if answers else line + "; no recorded generation: every request is a miss"


def _check_workers(workers: int, store: str) -> None:
    """``--workers N`` is a whole number of processes; more than one needs a shared store."""
    if workers < 1:
        raise ConfigError("command line", "--workers", f"{workers}: expected a whole number of processes, 1 or more")
    if workers > 1 and store == "memory":
        raise ConfigError(
            "command line",
            "--workers",
            f"{workers} workers would each keep their own quotas, balances, journal and scenario; "
            "expected --store redis://HOST:PORT/DB (or store: in the config file) for them to share",
        )


def _check_store(url: str, source: str, key: str) -> None:
    """A shared store must answer at start (later, a lost one answers 503 until it is back);
    ``source`` and ``key``: where the URL came from, for the message."""
    if url == "memory":
        return
    import redis

    from sfmock.state.redis_store import RedisStore

    store = RedisStore(url)
    try:
        store.client.ping()  # not through the store's guard: nothing was lost, nothing to log
        problem = store.cluster_problem()
    except redis.AuthenticationError as exc:
        raise ConfigError(source, key, f"{store.url}: {exc}; expected the password the server takes") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        message = f"the shared store {store.url} cannot be reached: {exc}; expected a Redis server that answers"
        raise ConfigError(source, key, message) from None
    except redis.ResponseError as exc:  # a database out of the server's range, say
        raise ConfigError(source, key, f"{store.url}: {exc}; expected a database the server has") from None
    finally:
        store.close()
    if problem is not None:
        raise ConfigError(source, key, f"{store.url}: {problem}")


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a config file or a scenario file (YAML or JSON)")


def validate(args: argparse.Namespace) -> int:
    """``sfmock validate FILE``: check a config or scenario file as ``serve`` would."""
    from sfmock.chaos.faults import Scenario
    from sfmock.config import load_settings, read_config_file

    try:
        document = _peek(args.file)
        if isinstance(document, dict) and "rules" in document:
            scenario = Scenario.load(args.file)
            print(f"{args.file}: a valid scenario ({scenario.name!r}, {plural(len(scenario.rules), 'rule')})")
        else:
            read_config_file(args.file)
            load_settings(args.file)
            print(f"{args.file}: a valid config")
    except ConfigError as exc:
        print(f"sfmock: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _peek(path: str) -> object:
    """The file's document, or ``None`` when it cannot be read (the loader then says why)."""
    from sfmock.contract.schemas import load_yaml
    from sfmock.documents import read_file

    try:
        return load_yaml(read_file(path).decode("utf-8"))
    except Exception:
        return None


def scenarios(args: argparse.Namespace) -> int:
    """``sfmock scenarios``: the shipped scenarios, with their descriptions."""
    from sfmock.chaos.faults import Scenario

    for name in Scenario.shipped():
        print(f"{name:<20} {Scenario.named(name).description}")
    return 0


COMMANDS: dict[str, Command] = {
    "serve": (
        _serve_arguments,
        serve,
        "run the fake server",
        "Run the fake API and image host. Flags override the config file.",
    ),
    "validate": (
        _validate_arguments,
        validate,
        "check a config or scenario file",
        "Check a config file (or a scenario file: one with 'rules') with the same checks and "
        "messages as serve; exit status 0 when valid, 2 when not.",
    ),
    "scenarios": (
        lambda parser: None,
        scenarios,
        "list the shipped scenarios",
        "List the scenarios shipped with sfmock (use them with --scenario NAME).",
    ),
}
