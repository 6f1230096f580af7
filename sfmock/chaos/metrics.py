"""Prometheus metrics of one app, served at ``GET /_sfmock/metrics``.

Each app has its own :class:`prometheus_client.CollectorRegistry` (never the global
one), so several fakes in one process count apart. Counted for every request the
journal records (the control API excepted), across all sessions.

The workers of ``sfmock serve --workers N`` count together: they run in
``prometheus_client``'s multiprocess mode (each writes its counts to files in the folder
:data:`FOLDER_VARIABLE` names, which ``serve`` makes and removes), and any of them
answers the sum.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from sfmock.service.legacy import legacy_model
from sfmock.service.quota import METRICS

__all__ = ["CONTENT_TYPE", "FOLDER_VARIABLE", "Metrics", "route_of"]

FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own: set before it is imported

CONTENT_TYPE = CONTENT_TYPE_LATEST
API_ROUTES = ("/v1/images/generations", "/v1/models", "/v1/user/info")
LEGACY_PATTERN = "/v1/{model}/text-to-image"  # the 2024 route
STORE_ROUTE = "/temporary/outputs/{object}"  # the image host's route (under any image_prefix)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_DETAILS = re.compile(rb"Details:([A-Za-z]+) limit reached")
# label values a client chooses are kept to known ones: it cannot grow the metrics
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
OTHER = "other"
LIMITS = frozenset(METRICS)  # the limits a 429's Details: may name; any other is "other"
HEADER_RULE = "header"  # the X-Sfmock-Fault header's faults
INSTALLED_RULE = "scenario"  # a rule of a scenario installed since the start (its name is a client's)


def route_of(path: str) -> str:
    """The route template a path belongs to (``other`` for unknown paths)."""
    if path in API_ROUTES:
        return path
    if legacy_model(path) is not None:
        return LEGACY_PATTERN
    if "/outputs/" in path or path.startswith("/temporary/"):  # /temporary/None/ seen in 2026
        return STORE_ROUTE
    return "other"


class Metrics:
    """Counters and histograms of one app."""

    def __init__(self, models: Collection[str] = (), rules: Collection[str] = ()) -> None:
        """``models``: the catalogue; a request naming any other model is labelled ``other``.
        ``rules``: the rule names of the scenario the server started with (the operator's);
        a fault of any other rule is labelled ``scenario``."""
        self.models = frozenset(models)
        self.rules = frozenset(rules) | {HEADER_RULE}
        self.folder = os.environ.get(FOLDER_VARIABLE)  # the workers' shared counts, if any
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sfmock_requests",
            "Requests answered (or dropped), by route, method, status, model and fault rule.",
            ["route", "method", "status", "model", "fault"],
            registry=self.registry,
        )
        self.images_issued = Counter(
            "sfmock_images_issued", "Image URLs issued by successful generations.", ["model"], registry=self.registry
        )
        self.images_downloaded = Counter(
            "sfmock_images_downloaded", "Images downloaded from the image host.", registry=self.registry
        )
        self.rate_limited = Counter(
            "sfmock_rate_limited",
            "429 answers, by the limit they name (rpm, ipm, ...; 'none' when a fault named none).",
            ["metric"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sfmock_request_duration_seconds",
            "Time from the request's arrival to the end of its answer (real seconds), by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # the children of the label sets seen so far (the metrics keep as many themselves)
        self._requests: dict[tuple[str, str, str, str, str], Any] = {}
        self._latency: dict[str, Any] = {}
        self._issued: dict[str, Any] = {}

    def observe(
        self,
        *,
        path: str,
        method: str,
        status: int | None,
        model: str | None,
        fault: str | None,
        seconds: float,
        images: int,
        answer: bytes,
    ) -> None:
        """Count one journalled request (``answer``: the start of its body, for 429s)."""
        route = route_of(path)
        rule = fault.split(":", 1)[0] if fault else ""
        if rule and rule not in self.rules:
            rule = INSTALLED_RULE
        if model is not None and model not in self.models:
            model = OTHER
        shown = method if method in METHODS else OTHER
        labels = (route, shown, "none" if status is None else str(status), model or "", rule)
        requests = self._requests.get(labels)
        if requests is None:  # labels() checks and locks: once per set of labels is enough
            requests = self._requests[labels] = self.requests.labels(*labels)
        requests.inc()
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = self.latency.labels(route)
        latency.observe(max(0.0, seconds))
        if images:
            issued = self._issued.get(model or "")
            if issued is None:
                issued = self._issued[model or ""] = self.images_issued.labels(model or "")
            issued.inc(images)
        if route == STORE_ROUTE and status == 200:
            self.images_downloaded.inc()
        if status == 429:
            found = _DETAILS.search(answer)
            limit = found.group(1).decode().lower() if found else "none"
            self.rate_limited.labels(limit if limit in LIMITS or limit == "none" else OTHER).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (of every worker, under ``--workers``)."""
        if self.folder is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=self.folder)  # type: ignore[no-untyped-call]  # untyped there
        return generate_latest(every_worker)
