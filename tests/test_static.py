"""/static/ in front of Django (swarmweb/static_handler.py): the page's modules and the
admin's files are answered without Django, revalidated by ETag; anything else goes on."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.conf import settings

from swarmweb.static_handler import static_app


async def fallback(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": [(b"x-app", b"django")]})
    await send({"type": "http.response.body", "body": b"not static"})


@pytest.fixture
def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=static_app(fallback))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_page_module_is_served_and_revalidated(client: httpx.AsyncClient) -> None:
    async with client:
        first = await client.get("/static/swarm/main.js")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/javascript")
        assert first.content == (settings.BASE_DIR / "static/swarm/main.js").read_bytes()
        assert "x-app" not in first.headers
        assert first.headers["cache-control"] == "max-age=0, public"
        again = await client.get(
            "/static/swarm/main.js", headers={"if-none-match": first.headers["etag"]}
        )
        assert again.status_code == 304
        assert again.content == b""


async def test_the_admin_files_come_from_the_app_folders(client: httpx.AsyncClient) -> None:
    async with client:
        css = await client.get("/static/admin/css/base.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    "path", ["/static/swarm/nothing.js", "/static/../manage.py", "/", "/static/"]
)
async def test_anything_else_goes_on_to_the_app(client: httpx.AsyncClient, path: str) -> None:
    async with client:
        response = await client.get(path)
        assert response.status_code == 404
        assert response.headers["x-app"] == "django"
