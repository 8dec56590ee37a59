"""Operational endpoints: /healthz and /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from beacon import health as beacon_health
from peers.signaling.asgi import health as signaling_health
from swarmweb import metrics
from swarmweb.celery import app as celery_app

CHECK_TIMEOUT_S = 3.0
CHECKS = ("database", "channel_layer", "broker", "beacon", "signaling")


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # a thread of the default executor: give the connection back


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
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


async def _check_signaling() -> None:
    problem = signaling_health()
    if problem is not None:
        raise RuntimeError(problem)


async def _run(check: Any) -> dict[str, Any]:
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
    except Exception as exc:  # a health check reports every failure, whatever its kind
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True}


# Read-only: a write gets 405, not the CSRF failure page (these are for probes, not forms).
@csrf_exempt
@require_safe
async def healthz(request: HttpRequest) -> HttpResponse:
    # All at once, each in its own thread or task: one that hangs until its timeout
    # (a database that went away) neither delays nor hides the others.
    checks = dict(
        zip(
            CHECKS,
            await asyncio.gather(
                _run(sync_to_async(_check_database, thread_sensitive=False)),
                _run(_check_channel_layer),
                _run(sync_to_async(_check_broker, thread_sensitive=False)),
                # What the lean ASGI paths experience, outside Django's request handling.
                _run(beacon_health.check),
                _run(_check_signaling),
            ),
            strict=True,
        )
    )
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)


@csrf_exempt
@require_safe
async def metrics_view(request: HttpRequest) -> HttpResponse:
    text = await sync_to_async(metrics.render)()
    return HttpResponse(text, content_type="text/plain; version=0.0.4; charset=utf-8")
