"""sfmock's own work for a generation with nothing around it: how close one process can get.

One bare ASGI function (no Starlette, no middleware) does what a generation costs sfmock,
with sfmock's own pieces: it parses the body (``read_json``), checks it with the compiled
contract validator, authenticates the key (open mode), admits and charges the request
(the same ``Admission`` on the memory store), builds the 200 body with the same
``Generator`` (signed image URLs), encodes it, journals the request in the same
``Journal`` and counts it in the same ``Metrics``. Left out: sessions, the fault engine,
the page's answers, lifecycle and strict-mode checks, Starlette's Request and Response,
and the middleware that stamps trace ids and catches store outages and internal errors.

It is served as sfmock is (``uvicorn_config``: httptools, uvloop, one write per answer).
``bench/run.py`` measures it beside sfmock and the bare endpoint, on the same stack: its
distance from the bare endpoint is what the work itself costs; sfmock's distance from it
is what everything around the work costs. Run: ``python bench/ceiling_app.py PORT``.
"""

from __future__ import annotations

import random
import sys
import time
from decimal import Decimal
from typing import Any

import uvicorn
from starlette.requests import Request

from sfmock import Limits, load_contract
from sfmock.chaos.journal import Journal
from sfmock.chaos.metrics import Metrics
from sfmock.contract.validation import RequestValidator
from sfmock.protocol import uvicorn_config
from sfmock.server import listen
from sfmock.service.accounts import OpenAuthenticator
from sfmock.service.admission import Admission
from sfmock.service.generation import Generator, prompt_tokens
from sfmock.service.payloads import read_json
from sfmock.service.quota import Usage
from sfmock.service.responses import generation_response
from sfmock.service.signing import UrlSigner
from sfmock.service.tracing import uuid4_text
from sfmock.state.memory import MemoryBook

LIMIT = 1_000_000_000
CONTRACT = load_contract()
VALIDATOR = RequestValidator(CONTRACT)
AUTH = OpenAuthenticator(Decimal(LIMIT))
ADMISSION = Admission(
    limits=Limits(rpm=LIMIT, ipm=LIMIT, ipd=LIMIT), model_limits={}, prices={}, headers=False, book=MemoryBook()
)
GENERATOR = Generator(contract=CONTRACT, signer=UrlSigner("k" * 43, ttl=3600), base_url="http://127.0.0.1:1")
JOURNAL = Journal(1000)
METRICS = Metrics(CONTRACT.models)
RNG, TRACE_RNG = random.Random(1), random.Random(2)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    began, now = time.perf_counter(), time.time()
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    message = await receive()
    raw = message.get("body", b"")
    scope["state"] = {"body": raw}
    body = await read_json(Request(scope, receive), LIMIT)
    trace_id = uuid4_text(TRACE_RNG.getrandbits(128))
    account = AUTH.authenticate(headers.get("authorization"))
    assert VALIDATOR.first_message(body, strict=False) is None
    model = CONTRACT.models[body["model"]]
    usage = Usage(images=GENERATOR.image_count(body, model), tokens=prompt_tokens(body))
    ADMISSION.admit(account, model, usage, now, trace_id)
    result = GENERATOR.respond(body, model, rng=RNG, now=now)
    response = generation_response(result)
    answer = bytes(response.body)
    raw_headers = [*response.raw_headers, (b"x-siliconcloud-trace-id", trace_id.encode())]
    start = {"type": "http.response.start", "status": 200, "headers": raw_headers}
    JOURNAL.record(
        time=now,
        method=scope["method"],
        path=scope["path"],
        query="",
        authorization=headers.get("authorization"),
        body=raw,
        status=200,
        outcome="response",
        fault=None,
        trace_id=trace_id,
        headers=headers,
        response=answer,
    )
    METRICS.observe(
        path=scope["path"],
        method=scope["method"],
        status=200,
        model=model.id,
        fault=None,
        seconds=time.perf_counter() - began,
        images=len(result["images"]),
        answer=answer,
    )
    await send(start)
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    sock = listen("127.0.0.1", int(sys.argv[1]))
    print(f"ceiling on {sock.getsockname()[1]}", file=sys.stderr, flush=True)
    config = uvicorn_config(app, log_level="warning", loop="uvloop")  # sfmock's own protocol
    uvicorn.Server(config).run(sockets=[sock])
