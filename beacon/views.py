"""Beacon views served by Django (the announce and peers hot paths live in beacon.asgi)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .openapi import openapi_document


@require_GET
def openapi(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(
        json.dumps(openapi_document(request.build_absolute_uri("/")), indent=2),
        content_type="application/json",
    )
    response["Access-Control-Allow-Origin"] = "*"
    return response
