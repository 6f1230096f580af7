"""RSS of an app before and after issuing N image URLs (printed as JSON)."""

from __future__ import annotations

import json
import resource
import sys
from decimal import Decimal

from sfmock import Settings, VirtualClock, create_app
from sfmock.transports import InProcess


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(urls: int) -> None:
    settings = Settings(seed=1, default_balance=Decimal(10**9))
    app = create_app(settings, clock=VirtualClock())  # frozen: every URL stays valid
    caller = InProcess(app)
    headers = [(b"authorization", b"Bearer sk-bench"), (b"content-type", b"application/json")]
    body = b'{"model":"Kwai-Kolors/Kolors","prompt":"p%d","batch_size":4}'
    for i in range(200):  # warm up: imports, caches, the journal at its bound
        caller.call("POST", "http://b/v1/images/generations", headers, body % i, None)
    caller.transcript.clear()
    idle = rss_mb()
    issued = 0
    for i in range(urls // 4):
        exchange = caller.call("POST", "http://b/v1/images/generations", headers, body % i, None)
        issued += exchange.body.count(b"X-Amz-Signature") // 2  # images and data list the same URLs
        caller.transcript.clear()
    print(json.dumps({"idle_mb": idle, "after_mb": rss_mb(), "urls": issued}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
