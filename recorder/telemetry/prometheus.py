"""Prometheus metrics without a dependency: counters, gauges, histograms and the text format.

The primitives are thread-safe and cheap enough for the hot path (a dict lookup and a short
lock per update). They are not registered anywhere on their own: whoever owns one (a component
counting what only it knows) keeps it, and the scrape asks the owner for it. Values that a
component already keeps in its own form are turned into a ``MetricFamily`` at scrape time
instead (see ``recorder.telemetry``).

``render`` writes the text exposition format 0.0.4
(https://prometheus.io/docs/instrumenting/exposition_formats/): HELP and TYPE lines, then the
samples, label values escaped (backslash, double quote, line feed).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Request latencies: 100 µs (a TEST answered from memory) to 5 s (a CALLLIST over a big table).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)

TYPES = frozenset({"counter", "gauge", "histogram", "untyped"})


@dataclass(frozen=True)
class Sample:
    """One line of the exposition: ``name{labels} value``."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class MetricFamily:
    """A metric's HELP, TYPE and samples, as one scrape renders them."""

    name: str
    help: str
    type: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        """A sample of this family (``suffix`` for a histogram's ``_bucket``, ``_sum``...)."""
        self.samples.append(Sample(self.name + suffix, labels, value))


def _check_name(name: str) -> None:
    if not name or not (name[0].isalpha() or name[0] in "_:") or not all(
            c.isascii() and (c.isalnum() or c in "_:") for c in name):
        raise ValueError(f"invalid metric or label name {name!r}")


class _Metric:
    """What the three kinds share: a name, help, label names and children by label values."""

    type = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        _check_name(name)
        for label in labelnames:
            _check_name(label)
            if label.startswith("__") or label == "le":
                raise ValueError(f"reserved label name {label!r}")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, values: Sequence[str]) -> tuple[str, ...]:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} has labels {self.labelnames}, got {len(values)} "
                             "values")
        return tuple(str(v) for v in values)

    def _labels(self, key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.labelnames, key, strict=True))


class _Valued(_Metric):
    """One number per combination of label values: what counters and gauges share."""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        if not self.labelnames:
            self._values[()] = 0.0  # an unlabelled one shows 0 before its first change

    def _add(self, amount: float, labels: Sequence[str]) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, labels: Sequence[str] = ()) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def collect(self) -> MetricFamily:
        with self._lock:
            items = sorted(self._values.items())
        family = MetricFamily(self.name, self.help, self.type)
        for key, value in items:
            family.add(value, **self._labels(key))
        return family


class Counter(_Valued):
    """A total that only goes up. By convention its name ends in ``_total``."""

    type = "counter"

    def inc(self, amount: float = 1.0, labels: Sequence[str] = ()) -> None:
        """Add ``amount`` (not negative) to the child with label values ``labels``."""
        if amount < 0:
            raise ValueError("a counter cannot go down")
        self._add(amount, labels)

    def total(self) -> float:
        """The sum over every child."""
        with self._lock:
            return sum(self._values.values())


class Gauge(_Valued):
    """A value that goes up and down."""

    type = "gauge"

    def set(self, value: float, labels: Sequence[str] = ()) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, labels: Sequence[str] = ()) -> None:
        self._add(amount, labels)

    def dec(self, amount: float = 1.0, labels: Sequence[str] = ()) -> None:
        self._add(-amount, labels)


@dataclass
class _Buckets:
    counts: list[int]  # per bucket (not cumulative), the last one for +Inf
    total: float = 0.0
    count: int = 0


class Histogram(_Metric):
    """Observations counted into buckets (cumulative ``le`` buckets when rendered)."""

    type = "histogram"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help, labelnames)
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError("a histogram needs distinct, finite bucket bounds")
        self.buckets = tuple(bounds)
        self._children: dict[tuple[str, ...], _Buckets] = {}

    def observe(self, value: float, labels: Sequence[str] = ()) -> None:
        key = self._key(labels)
        # The first bucket whose upper bound holds the value (le is inclusive).
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = _Buckets([0] * (len(self.buckets) + 1))
            child.counts[index] += 1
            child.total += value
            child.count += 1

    def count(self, labels: Sequence[str] = ()) -> int:
        with self._lock:
            child = self._children.get(self._key(labels))
            return child.count if child is not None else 0

    def collect(self) -> MetricFamily:
        with self._lock:
            items = sorted(((key, _Buckets(list(c.counts), c.total, c.count))
                            for key, c in self._children.items()), key=lambda kv: kv[0])
        family = MetricFamily(self.name, self.help, self.type)
        for key, child in items:
            labels = self._labels(key)
            running = 0
            for bound, n in zip((*self.buckets, math.inf), child.counts, strict=True):
                running += n
                family.add(running, "_bucket", **labels, le=format_value(bound))
            family.add(child.total, "_sum", **labels)
            family.add(child.count, "_count", **labels)
        return family


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Go's ParseFloat reads it: +Inf, -Inf, NaN, integers without ``.0``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[MetricFamily]) -> str:
    """The text exposition (format 0.0.4) of ``families``; each name must appear once."""
    lines: list[str] = []
    seen: set[str] = set()
    for family in families:
        if family.name in seen:
            raise ValueError(f"metric family {family.name} rendered twice")
        if family.type not in TYPES:
            raise ValueError(f"{family.name}: unknown metric type {family.type!r}")
        seen.add(family.name)
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            if sample.labels:
                labels = ",".join(f'{name}="{escape_label_value(value)}"'
                                  for name, value in sample.labels.items())
                lines.append(f"{sample.name}{{{labels}}} {format_value(sample.value)}")
            else:
                lines.append(f"{sample.name} {format_value(sample.value)}")
    return "\n".join(lines) + "\n" if lines else ""


__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Counter", "Gauge", "Histogram", "MetricFamily",
           "Sample", "escape_label_value", "format_value", "render"]
