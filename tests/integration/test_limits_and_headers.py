"""Rate limits, trusted proxies, CORS and the page's security headers, on real servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
import websockets

from ..support.processes import RedisServer, ServerProcess

ROOM_LIMIT = {"rate_rooms": "3/2seconds"}


async def create(http: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await http.post("/api/rooms", headers=headers)


async def until_allowed(http: httpx.AsyncClient, timeout: float = 10, **headers: str) -> None:
    """The limit resets: a call succeeds again before the deadline."""
    deadline = time.monotonic() + timeout
    while (await create(http, **headers)).status_code == 429:
        assert time.monotonic() < deadline, "the limit did not reset"
        await asyncio.sleep(0.1)


async def test_room_creation_limit_is_reached_and_resets(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(**ROOM_LIMIT)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        for _ in range(3):
            assert (await create(http)).status_code == 201
        refused = await create(http)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.json()["error"]["message"].startswith("Too many rooms")
        assert "Try again in" in refused.json()["error"]["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 2
        await until_allowed(http)


async def test_api_limit_covers_every_call_and_sockets(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(rate_api="5/2seconds")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        statuses = [
            (await http.get("/api/diagnostics", params={"roomId": "zzzz-zzzzz-zzzz"})).status_code
            for _ in range(6)
        ]
        assert statuses == [404] * 5 + [429]
        # The page itself is not an API call.
        assert (await http.get("/")).status_code == 200
    async with websockets.connect(server.ws_url + "/api/rooms/zzzz-zzzzz-zzzz/ws") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    # The limit resets: calls go through again.
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        deadline = time.monotonic() + 10
        while (await http.get("/api/config")).status_code == 429:
            assert time.monotonic() < deadline, "the API limit did not reset"
            await asyncio.sleep(0.1)


async def test_limits_are_shared_by_processes_on_one_redis(
    start_server: Callable[..., ServerProcess], redis_server: RedisServer
) -> None:
    redis_server.flush()
    a = start_server(redis_url=redis_server.url, rate_rooms="3/minute")
    b = start_server(redis_url=redis_server.url, rate_rooms="3/minute")
    async with httpx.AsyncClient() as http:
        for url in (a.base_url, b.base_url, a.base_url):
            assert (await http.post(url + "/api/rooms")).status_code == 201
        assert (await http.post(b.base_url + "/api/rooms")).status_code == 429
        assert (await http.post(a.base_url + "/api/rooms")).status_code == 429


async def test_forwarded_addresses_count_only_behind_a_trusted_proxy(
    start_server: Callable[..., ServerProcess],
) -> None:
    untrusting = start_server(**ROOM_LIMIT)
    async with httpx.AsyncClient(base_url=untrusting.base_url) as http:
        for n in range(3):
            assert (await create(http, **{"X-Forwarded-For": f"203.0.113.{n}"})).status_code == 201
        # Spoofed headers from a direct client do not buy more rooms.
        assert (await create(http, **{"X-Forwarded-For": "203.0.113.99"})).status_code == 429

    trusting = start_server(**ROOM_LIMIT, trusted_proxies="127.0.0.1")
    async with httpx.AsyncClient(base_url=trusting.base_url) as http:
        for _ in range(3):
            assert (await create(http, **{"X-Forwarded-For": "203.0.113.1"})).status_code == 201
        assert (await create(http, **{"X-Forwarded-For": "203.0.113.1"})).status_code == 429
        # Another client behind the same proxy has its own allowance.
        assert (await create(http, **{"X-Forwarded-For": "203.0.113.2"})).status_code == 201


async def test_cors_allows_configured_origins_only(
    start_server: Callable[..., ServerProcess], memory_server: ServerProcess
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    server = start_server(cors_origins="https://app.example.org")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        allowed = await http.options(
            "/api/rooms", headers={**preflight, "Origin": "https://app.example.org"}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
        refused = await http.options(
            "/api/rooms", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in refused.headers
        assert refused.status_code >= 400
    async with httpx.AsyncClient(base_url=memory_server.base_url) as http:
        default = await http.options(
            "/api/rooms", headers={**preflight, "Origin": "https://app.example.org"}
        )
        assert "access-control-allow-origin" not in default.headers


async def test_the_page_has_security_headers(memory_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=memory_server.base_url) as http:
        for path in ("/", "/r/abcd-efghj-kmnp", "/static/js/main.js", "/api/config"):
            headers = (await http.get(path)).headers
            csp = headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
            assert "display-capture=(self)" in headers["permissions-policy"]
        # Only the sharing page may use what screen capture consults; others nothing.
        assert "camera=(self)" in (await http.get("/")).headers["permissions-policy"]
        assert "camera=()" in (await http.get("/check")).headers["permissions-policy"]
        page = (await http.get("/")).text
        assert "<script>" not in page and " on" not in page.split("<body", 1)[1].split(">")[0]
