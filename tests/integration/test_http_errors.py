"""Bad input gets a clear JSON error with the right status, never a 500."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ..support.certs import self_signed_certificate
from ..support.clients import create_room, join_room, offer_sdp
from ..support.processes import ServerProcess


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    message: str = error["message"]
    return message


@pytest.fixture
async def host(http: httpx.AsyncClient) -> AsyncIterator[tuple[str, dict[str, str]]]:
    room = await create_room(http)
    yield room["roomId"], {"Authorization": f"Bearer {room['hostToken']}"}


async def test_malformed_json(http: httpx.AsyncClient, host: tuple[str, dict[str, str]]) -> None:
    _, auth = host
    response = await http.post(
        "/api/offer", content=b'{"roomId": ', headers={**auth, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_request")


async def test_missing_and_mistyped_fields(
    http: httpx.AsyncClient, host: tuple[str, dict[str, str]]
) -> None:
    room_id, auth = host
    message = assert_error(
        await http.post("/api/offer", json={"roomId": room_id}, headers=auth),
        422,
        "validation_error",
    )
    assert "desc" in message
    bad_type = {"roomId": room_id, "desc": {"type": "answer", "sdp": "v=0"}}
    assert_error(
        await http.post("/api/offer", json=bad_type, headers=auth), 422, "validation_error"
    )
    bad_candidate = {
        "roomId": room_id,
        "role": "host",
        "viewerId": "vaaaaaaaaaa",
        "candidate": {"candidate": 5},
    }
    assert_error(
        await http.post("/api/candidate", json=bad_candidate, headers=auth), 422, "validation_error"
    )
    assert_error(await http.post("/api/offer", json=[1, 2], headers=auth), 422, "validation_error")


async def test_oversized_input(http: httpx.AsyncClient, host: tuple[str, dict[str, str]]) -> None:
    room_id, auth = host
    big_sdp = {"roomId": room_id, "desc": {"type": "offer", "sdp": "a" * 70_000}}
    assert_error(
        await http.post("/api/offer", json=big_sdp, headers=auth), 413, "payload_too_large"
    )
    big_candidate = {
        "roomId": room_id,
        "role": "host",
        "viewerId": "vaaaaaaaaaa",
        "candidate": {"candidate": "c" * 3000},
    }
    assert_error(
        await http.post("/api/candidate", json=big_candidate, headers=auth),
        413,
        "payload_too_large",
    )
    huge = b'{"roomId": "' + b"x" * 400_000 + b'"}'
    assert_error(
        await http.post("/api/offer", content=huge, headers=auth), 413, "payload_too_large"
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(40):
            yield b"x" * 10_000

    assert_error(
        await http.post("/api/offer", content=chunks(), headers=auth), 413, "payload_too_large"
    )


async def test_unknown_and_malformed_rooms(http: httpx.AsyncClient) -> None:
    message = assert_error(await http.get("/api/rooms/zzzz-zzzzz-zzzz"), 404, "room_not_found")
    assert message.startswith("Room not found")
    assert_error(
        await http.get("/api/diagnostics", params={"roomId": "zzzz-zzzzz-zzzz"}),
        404,
        "room_not_found",
    )
    assert_error(await http.post("/api/rooms/zzzz-zzzzz-zzzz/viewers"), 404, "room_not_found")
    assert_error(await http.get("/api/rooms/not-a-room"), 400, "invalid_request")
    assert_error(await http.get("/api/diagnostics"), 422, "validation_error")


async def test_typed_codes_are_accepted(http: httpx.AsyncClient) -> None:
    room = await create_room(http)
    typed = room["roomId"].upper().replace("-", " ")
    viewer = await join_room(http, typed)
    assert viewer["roomId"] == room["roomId"]


async def test_long_poll_wait_limits(
    http: httpx.AsyncClient, host: tuple[str, dict[str, str]]
) -> None:
    room_id, auth = host
    path = f"/api/rooms/{room_id}/messages"
    assert_error(await http.get(path, params={"wait": 31}, headers=auth), 400, "invalid_request")
    assert_error(
        await http.get(path, params={"wait": "soon"}, headers=auth), 422, "validation_error"
    )
    assert_error(await http.get(path, params={"after": -1}, headers=auth), 422, "validation_error")


async def test_unknown_paths_and_methods(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/api/nothing"), 404, "not_found")
    assert_error(await http.put("/api/rooms"), 405, "method_not_allowed")
    response = await http.get("/api/rooms/zzzz-zzzzz-zzzz/ws")
    assert response.status_code == 426
    assert "WebSocket" in response.json()["error"]["message"]


async def test_mailbox_full(start_server: object) -> None:
    server: ServerProcess = start_server(max_pending_messages=10)  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        room = await create_room(client)
        viewer = await join_room(client, room["roomId"])
        auth = {"Authorization": f"Bearer {room['hostToken']}"}
        body = {"type": "offer", "to": viewer["viewerId"], "desc": offer_sdp("x")}
        path = f"/api/rooms/{room['roomId']}/messages"
        # One sender may fill a quarter of a mailbox: 2 of 10 messages here.
        for _ in range(2):
            assert (await client.post(path, json=body, headers=auth)).status_code == 202
        full = await client.post(path, json=body, headers=auth)
        assert_error(full, 409, "mailbox_full")
        assert "waiting for this recipient" in full.json()["error"]["message"]


async def test_openapi_describes_every_endpoint_and_its_errors(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    operations = {(path, method) for path, item in spec["paths"].items() for method in item}
    expected = {
        ("/api/rooms", "post"),
        ("/api/rooms/{room_id}", "get"),
        ("/api/rooms/{room_id}", "delete"),
        ("/api/rooms/{room_id}", "patch"),
        ("/api/rooms/{room_id}/viewers", "post"),
        ("/api/rooms/{room_id}/viewers/{viewer_id}", "delete"),
        ("/api/rooms/{room_id}/messages", "get"),
        ("/api/rooms/{room_id}/messages", "post"),
        ("/api/rooms/{room_id}/ws", "get"),
        ("/api/offer", "get"),
        ("/api/offer", "post"),
        ("/api/answer", "get"),
        ("/api/answer", "post"),
        ("/api/candidate", "get"),
        ("/api/candidate", "post"),
        ("/api/diagnostics", "get"),
        ("/healthz", "get"),
        ("/api/config", "get"),
        ("/api/rooms/{room_id}/qr.svg", "get"),
        ("/api/rooms/{room_id}/chat", "get"),
        ("/api/rooms/{room_id}/chat", "post"),
        ("/api/rooms/{room_id}/ice-servers", "get"),
        ("/api/rooms/{room_id}/report", "post"),
        ("/metrics", "get"),
        ("/api/check/ice-servers", "get"),
    }
    assert operations == expected
    error_ref = "#/components/schemas/ErrorResponse"
    for path, method in operations - {("/api/rooms/{room_id}/ws", "get")}:
        if path in ("/api/rooms/{room_id}/qr.svg", "/metrics"):
            continue  # an image; its errors are JSON like the rest (checked below)
        responses = spec["paths"][path][method]["responses"]
        for status in ("400", "422", "503"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": error_ref}, (path, method, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert "bearer" in str(spec["components"]["securitySchemes"]).lower()


async def test_room_qr_code(http: httpx.AsyncClient) -> None:
    room = await create_room(http)
    response = await http.get(f"/api/rooms/{room['roomId']}/qr.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.text.startswith("<svg")
    assert_error(await http.get("/api/rooms/zzzz-zzzzz-zzzz/qr.svg"), 404, "room_not_found")


def test_serves_https_with_a_certificate(start_server: object, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server: ServerProcess = start_server(  # type: ignore[operator]
        ssl_certfile=str(cert), ssl_keyfile=str(key)
    )
    assert server.base_url.startswith("https://")
    context = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(verify=context) as client:
        response = client.get(f"{server.base_url}/healthz")
    assert response.json() == {"status": "ok", "store": "memory"}
    # Once seen over https, browsers must never fall back to http.
    assert response.headers["strict-transport-security"] == "max-age=31536000"
