"""Prometheus metrics of one app, served at ``GET /_sfmock/metrics``.

Each app has its own :class:`prometheus_client.CollectorRegistry` (never the global
one), so several fakes in one process count apart. Counted for every request the
journal records (the control API excepted), across all sessions.

A request only adds to plain counters (:class:`Counts`); a collector of this app's
registry reads them when the metrics are asked for, so the request pays no label
checks, locks or sample objects.

The workers of ``sfmock serve --workers N`` count together: they run in
``prometheus_client``'s multiprocess mode (each writes its counts to files in the folder
:data:`FOLDER_VARIABLE` names, which ``serve`` makes and removes), and any of them
answers the sum; there the counts go to ``prometheus_client``'s metrics as they come
(:class:`SharedCounts`), since any worker may be asked for all of them at any time.
"""

from __future__ import annotations

import os
import re
import time
from bisect import bisect_left
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from sfmock.service.legacy import legacy_model
from sfmock.service.quota import METRICS

__all__ = ["CONTENT_TYPE", "FOLDER_VARIABLE", "Counts", "Metrics", "SharedCounts", "route_of"]

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


REQUESTS = ("sfmock_requests", "Requests answered (or dropped), by route, method, status, model and fault rule.")
REQUEST_LABELS = ("route", "method", "status", "model", "fault")
ISSUED = ("sfmock_images_issued", "Image URLs issued by successful generations.")
DOWNLOADED = ("sfmock_images_downloaded", "Images downloaded from the image host.")
LIMITED = (
    "sfmock_rate_limited",
    "429 answers, by the limit they name (rpm, ipm, ...; 'none' when a fault named none).",
)
LATENCY = (
    "sfmock_request_duration_seconds",
    "Time from the request's arrival to the end of its answer (real seconds), by route.",
)
Labels = tuple[str, str, str, str, str]
LABELS_KEPT = 1024  # the label sets of the requests seen last, kept to label the next alike


class Sink(Protocol):
    """Where :class:`Metrics` adds one request's counts."""

    def add(self, labels: Labels, seconds: float, images: int, downloaded: bool, limit: str | None) -> None: ...


class Metrics:
    """The metrics of one app: labels a request with known values, counts it in a :class:`Sink`."""

    def __init__(self, models: Collection[str] = (), rules: Collection[str] = ()) -> None:
        """``models``: the catalogue; a request naming any other model is labelled ``other``.
        ``rules``: the rule names of the scenario the server started with (the operator's);
        a fault of any other rule is labelled ``scenario``."""
        self.models = frozenset(models)
        self.rules = frozenset(rules) | {HEADER_RULE}
        self.folder = os.environ.get(FOLDER_VARIABLE)  # the workers' shared counts, if any
        self.registry = CollectorRegistry(auto_describe=True)
        self.counts: Sink = Counts(self.registry) if self.folder is None else SharedCounts(self.registry)
        self._labels: dict[tuple[str, str, int | None, str | None, str | None], Labels] = {}  # what observe() saw

    def observe(
        self,
        path: str,
        method: str,
        status: int | None,
        model: str | None,
        fault: str | None,
        seconds: float,
        images: int,
        answer: bytes,
    ) -> None:
        """Count one journalled request (``answer``: the start of its body, for 429s); its
        arguments by position (on every request: a call with keywords costs more)."""
        asked = (path, method, status, model, fault)
        labels = self._labels.get(asked)
        if labels is None:
            labels = self._label(path, method, status, model, fault)
            if len(self._labels) >= LABELS_KEPT:  # any path and model a client sends: kept bounded
                self._labels.clear()
            self._labels[asked] = labels
        route = labels[0]
        limit = None
        if status == 429:
            found = _DETAILS.search(answer)
            limit = found.group(1).decode().lower() if found else "none"
            limit = limit if limit in LIMITS or limit == "none" else OTHER
        self.counts.add(labels, max(0.0, seconds), images, route == STORE_ROUTE and status == 200, limit)

    def _label(self, path: str, method: str, status: int | None, model: str | None, fault: str | None) -> Labels:
        """The labels of a request: its route, and only known values."""
        rule = fault.split(":", 1)[0] if fault else ""
        if rule and rule not in self.rules:
            rule = INSTALLED_RULE
        if model is not None and model not in self.models:
            model = OTHER
        shown = method if method in METHODS else OTHER
        return (route_of(path), shown, "none" if status is None else str(status), model or "", rule)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (of every worker, under ``--workers``)."""
        if self.folder is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=self.folder)  # type: ignore[no-untyped-call]  # untyped there
        return generate_latest(every_worker)


class Counts:
    """One process's counts in plain dictionaries, read by its registry when collected.

    Each label set notes when it was first counted, as ``prometheus_client``'s own
    counters do (their ``_created`` samples)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests: dict[Labels, list[float]] = {}  # labels -> [count, created]
        self.issued: dict[str, list[float]] = {}  # model -> [count, created]
        self.limited: dict[str, list[float]] = {}  # limit -> [count, created]
        self.downloaded = [0.0, time.time()]
        # route -> [the count of each bucket (the last one +Inf), the sum, created]
        self.latency: dict[str, list[float]] = {}
        registry.register(self)

    def add(self, labels: Labels, seconds: float, images: int, downloaded: bool, limit: str | None) -> None:
        counted = self.requests.get(labels)
        if counted is None:
            counted = self.requests[labels] = [0, time.time()]
        counted[0] += 1
        route = labels[0]
        latency = self.latency.get(route)
        if latency is None:
            latency = self.latency[route] = [0.0] * (len(LATENCY_BUCKETS) + 1) + [0.0, time.time()]
        latency[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le: a value on a bound counts in it
        latency[-2] += seconds
        if images:
            issued = self.issued.get(labels[3])
            if issued is None:
                issued = self.issued[labels[3]] = [0, time.time()]
            issued[0] += images
        if downloaded:
            self.downloaded[0] += 1
        if limit is not None:
            limited = self.limited.get(limit)
            if limited is None:
                limited = self.limited[limit] = [0, time.time()]
            limited[0] += 1

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the families are known only when collected: nothing to check when registered

    def collect(self) -> Iterator[Metric]:
        """The counts as Prometheus metric families (called when the metrics are asked for)."""
        families: list[tuple[CounterMetricFamily, Mapping[Any, list[float]]]] = [
            (CounterMetricFamily(*REQUESTS, labels=REQUEST_LABELS), self.requests),
            (CounterMetricFamily(*ISSUED, labels=("model",)), self.issued),
            (CounterMetricFamily(*DOWNLOADED, labels=()), {(): self.downloaded}),
            (CounterMetricFamily(*LIMITED, labels=("metric",)), self.limited),
        ]
        for family, counts in families:
            for labels, (count, created) in list(counts.items()):
                family.add_metric(labels if isinstance(labels, tuple) else (labels,), count, created=created)
            yield family
        latency = HistogramMetricFamily(*LATENCY, labels=("route",))
        bounds = [floatToGoString(bound) for bound in (*LATENCY_BUCKETS, float("inf"))]  # type: ignore[no-untyped-call]
        firsts: list[Sample] = []
        for route, held in list(self.latency.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip(bounds, held[: len(bounds)], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([route], buckets, held[-2])
            firsts.append(Sample(f"{LATENCY[0]}_created", {"route": route}, held[-1]))
        latency.samples.extend(firsts)
        yield latency


class SharedCounts:
    """The counts of one worker of several, in ``prometheus_client``'s own metrics (its
    multiprocess mode writes them to the workers' shared files as they come)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(*REQUESTS, REQUEST_LABELS, registry=registry)
        self.images_issued = Counter(*ISSUED, ["model"], registry=registry)
        self.images_downloaded = Counter(*DOWNLOADED, registry=registry)
        self.rate_limited = Counter(*LIMITED, ["metric"], registry=registry)
        self.latency = Histogram(*LATENCY, ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        # the children of the label sets seen so far (the metrics keep as many themselves)
        self._requests: dict[Labels, Any] = {}
        self._latency: dict[str, Any] = {}
        self._issued: dict[str, Any] = {}

    def add(self, labels: Labels, seconds: float, images: int, downloaded: bool, limit: str | None) -> None:
        requests = self._requests.get(labels)
        if requests is None:  # labels() checks and locks: once per set of labels is enough
            requests = self._requests[labels] = self.requests.labels(*labels)
        requests.inc()
        route, model = labels[0], labels[3]
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = self.latency.labels(route)
        latency.observe(seconds)
        if images:
            issued = self._issued.get(model)
            if issued is None:
                issued = self._issued[model] = self.images_issued.labels(model)
            issued.inc(images)
        if downloaded:
            self.images_downloaded.inc()
        if limit is not None:
            self.rate_limited.labels(limit).inc()
