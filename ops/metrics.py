"""Counters shared by every process, rendered at /metrics in Prometheus format.

Each process counts in memory and adds its counts to the database every couple of
seconds (one upsert per changed series), so /metrics on any web process shows the
whole deployment, with no server needed in the embedded default. Gauges that are
facts about stored data (live tickets, capsules) are computed at scrape time by
the collectors that apps register.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import connection, transaction

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 2.0

Labels = tuple[tuple[str, str], ...]
GaugeSample = tuple[str, str, Labels, float]  # name, help, labels, value

_lock = threading.Lock()
_pending: dict[tuple[str, Labels], int] = defaultdict(int)
_help: dict[str, str] = {}
_collectors: list[Callable[[], Iterable[GaugeSample]]] = []
_flusher: threading.Thread | None = None
_stop = threading.Event()


def describe(name: str, help_text: str) -> None:
    _help[name] = help_text


def incr(name: str, amount: int = 1, **labels: str) -> None:
    """Add to a counter; flushed to the shared store in the background."""
    key = (name, tuple(sorted(labels.items())))
    with _lock:
        _pending[key] += amount
    _ensure_flusher()


def register_collector(collector: Callable[[], Iterable[GaugeSample]]) -> None:
    _collectors.append(collector)


def flush() -> None:
    """Write pending counts to the database (called by the flusher and before a scrape)."""
    with _lock:
        if not _pending:
            return
        batch = dict(_pending)
        _pending.clear()
    try:
        _store(batch)
    except Exception:
        log.exception("could not flush %d counter series; keeping them", len(batch))
        with _lock:
            for key, amount in batch.items():
                _pending[key] += amount


def _store(batch: dict[tuple[str, Labels], int]) -> None:
    from .models import MetricCounter

    table = MetricCounter._meta.db_table
    sql = (
        f"INSERT INTO {table} (name, labels, value) VALUES (%s, %s, %s) "
        f"ON CONFLICT (name, labels) DO UPDATE SET value = {table}.value + excluded.value"
    )
    rows = [(name, render_labels(labels), amount) for (name, labels), amount in batch.items()]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _ensure_flusher() -> None:
    global _flusher
    if _flusher is not None or not settings.SWARM_METRICS_BACKGROUND_FLUSH:
        return
    with _lock:
        if _flusher is not None:
            return
        _flusher = threading.Thread(target=_flush_loop, name="metrics-flush", daemon=True)
        _flusher.start()
    atexit.register(flush)


def _flush_loop() -> None:
    while not _stop.wait(FLUSH_INTERVAL_S):
        flush()
        connection.close()


def render_labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render() -> str:
    """The Prometheus text exposition of every counter and collector."""
    from .models import MetricCounter

    flush()
    lines: list[str] = []
    by_name: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name, labels, value in MetricCounter.objects.order_by("name", "labels").values_list(
        "name", "labels", "value"
    ):
        by_name[name].append((labels, value))
    for name, series in by_name.items():
        lines.append(f"# HELP {name} {_help.get(name, name)}")
        lines.append(f"# TYPE {name} counter")
        lines.extend(f"{name}{labels} {value}" for labels, value in series)
    gauges: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
    gauge_help: dict[str, str] = {}
    for collector in _collectors:
        for gauge, help_text, gauge_labels, gauge_value in collector():
            gauges[gauge].append((gauge_labels, gauge_value))
            gauge_help[gauge] = help_text
    for gauge, gauge_series in gauges.items():
        lines.append(f"# HELP {gauge} {gauge_help[gauge]}")
        lines.append(f"# TYPE {gauge} gauge")
        lines.extend(f"{gauge}{render_labels(ls)} {_number(v)}" for ls, v in gauge_series)
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
