"""The ceiling for this stack: bare Starlette endpoints on uvicorn's fast stack.

``/generate`` returns a fixed 200 body like sfmock's; ``/image`` returns PNG bytes held
in memory. Served by uvicorn with httptools and uvloop (sfmock's own dependencies), one
process. Run: ``python bench/baseline_app.py PORT BODY_FILE NAME=PNG_FILE...``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sfmock.server import listen

BODY = Path(sys.argv[2]).read_bytes()
PNGS = {name: Path(path).read_bytes() for name, path in (arg.split("=", 1) for arg in sys.argv[3:])}


async def generate(request: Request) -> Response:
    return Response(BODY, media_type="application/json; charset=utf-8")


async def image(request: Request) -> Response:
    return Response(PNGS[request.path_params["name"]], media_type="image/png")


app = Starlette(routes=[Route("/generate", generate, methods=["POST"]), Route("/image/{name}", image)])

if __name__ == "__main__":
    sock = listen("127.0.0.1", int(sys.argv[1]))
    print(f"baseline on {sock.getsockname()[1]} httptools+uvloop", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, http="httptools", loop="uvloop")
    uvicorn.Server(config).run(sockets=[sock])
