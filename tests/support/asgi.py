"""Drive the real ASGI application in-process (no server), as a client would."""

from __future__ import annotations

from typing import Any

import httpx


class ApiClient:
    def __init__(self, app: Any) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
            base_url="http://127.0.0.1",
        )

    async def post(
        self, path: str, data: str | bytes, ip: str | None = None, **headers: str
    ) -> httpx.Response:
        hdrs = {"content-type": "application/json", **headers}
        if ip:
            hdrs["x-forwarded-for"] = ip
        return await self._client.post(path, content=data, headers=hdrs)

    async def get(self, path: str, ip: str | None = None, **headers: str) -> httpx.Response:
        hdrs = dict(headers)
        if ip:
            hdrs["x-forwarded-for"] = ip
        return await self._client.get(path, headers=hdrs)

    async def request(self, method: str, path: str, **headers: str) -> httpx.Response:
        return await self._client.request(method, path, headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()
