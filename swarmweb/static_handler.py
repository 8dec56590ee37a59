"""daphne's /static/ handler, with 404 (not 500) for paths that leave the static folders."""

from __future__ import annotations

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.http import FileResponse, Http404, HttpRequest, HttpResponse


class StaticFilesHandler(ASGIStaticFilesHandler):
    """Django's ASGI static handler, except that ``/static/../x`` is a plain 404.

    Django's finders refuse such a path with ``SuspiciousFileOperation``, which the stock
    handler lets through as a 500 (only ``Http404`` becomes a response there).
    """

    def serve(self, request: HttpRequest) -> HttpResponse | FileResponse:
        try:
            return super().serve(request)
        except SuspiciousFileOperation as exc:
            raise Http404("no such static file") from exc
