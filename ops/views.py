"""Operational endpoints: /healthz and /metrics.

/healthz checks what every process needs (the database, the channel layer, the broker)
and what the project wiring hands it (:func:`healthz_view`): the lean ASGI paths' own
checks, which know what their requests go through outside Django's request handling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from celery.app import default_app
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from . import metrics

CHECK_TIMEOUT_S = 3.0

# A check raises when what it checks is not working; the message says why.
Check = Callable[[], Awaitable[None]]
View = Callable[[HttpRequest], Coroutine[Any, Any, HttpResponse]]


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    with default_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_S)


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError("channel layer returned another message")


# Blocking checks run on threads of their own, not through sync_to_async: asgiref waits
# for a sync function to return even when the awaiting task is cancelled, so a check
# stuck on a database that went away (the pool waits up to its timeout for a
# connection) held the whole /healthz answer past CHECK_TIMEOUT_S, and probes saw a hang
# instead of a 503. Here the answer goes at the timeout; the thread finishes later. A few
# threads: while they are all stuck, further checks queue and time out (503), as they
# should.
_check_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="healthz")


def blocking_check(fn: Callable[[], None]) -> Check:
    """A check from a blocking function that uses Django's database connection: run on
    the health threads, the thread's connection given back after each call."""

    def call() -> None:
        try:
            fn()
        finally:
            connection.close()  # back to the pool (or closed, unpooled)

    async def check() -> None:
        await asyncio.wrap_future(_check_threads.submit(call))

    return check


async def _run(check: Check) -> dict[str, Any]:
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S:g} s"}
    except Exception as exc:  # a health check reports every failure, whatever its kind
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True}


BASE_CHECKS: tuple[tuple[str, Check], ...] = (
    ("database", blocking_check(_check_database)),
    ("channel_layer", _check_channel_layer),
    ("broker", blocking_check(_check_broker)),
)


def healthz_view(extra: Sequence[tuple[str, Check]] = ()) -> View:
    """The /healthz view: the base checks, then ``extra`` (name, check) in that order."""
    checks = (*BASE_CHECKS, *extra)

    # Read-only: a write gets 405, not the CSRF failure page (these are for probes, not forms).
    @csrf_exempt
    @require_safe
    async def healthz(request: HttpRequest) -> HttpResponse:
        # All at once, each in its own thread or task: one that hangs until its timeout
        # (a database that went away) neither delays nor hides the others.
        results = await asyncio.gather(*(_run(check) for _, check in checks))
        report = {name: result for (name, _), result in zip(checks, results, strict=True)}
        ok = all(result["ok"] for result in results)
        return JsonResponse({"ok": ok, "checks": report}, status=200 if ok else 503)

    return healthz


@csrf_exempt
@require_safe
async def metrics_view(request: HttpRequest) -> HttpResponse:
    text = await sync_to_async(metrics.render)()
    return HttpResponse(text, content_type="text/plain; version=0.0.4; charset=utf-8")
