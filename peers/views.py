"""The browser UI: the page that makes a visitor a peer."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "swarm/index.html", {"community": settings.SWARM_COMMUNITY})
