"""A client that follows the original single-viewer polling flow literally still works:
the host posts its offer before anyone joins, the viewer polls for it, and so on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ..support.clients import answer_sdp, candidate, create_room, join_room, offer_sdp
from ..support.processes import ServerProcess

POLL_INTERVAL = 0.1  # the original polls every 1 s; faster here, same requests


async def poll(
    http: httpx.AsyncClient, path: str, params: dict[str, str], key: str, timeout: float = 10
) -> Any:
    """GET until the response's ``key`` is non-empty, like the original flow's pollers."""
    deadline = time.monotonic() + timeout
    while True:
        response = await http.get(path, params=params)
        assert response.status_code == 200, response.text
        value = response.json()[key]
        if value:
            return value
        assert time.monotonic() < deadline, f"nothing at {path} within {timeout}s"
        await asyncio.sleep(POLL_INTERVAL)


async def test_original_flow_with_one_viewer(any_server: ServerProcess) -> None:
    base = any_server.base_url
    async with httpx.AsyncClient(base_url=base) as anonymous:
        room = await create_room(anonymous)
    room_id = room["roomId"]
    host = httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {room['hostToken']}"}
    )

    # Host: getDisplayMedia, createOffer, POST /api/offer, and its candidates, before
    # any viewer exists.
    response = await host.post("/api/offer", json={"roomId": room_id, "desc": offer_sdp("h")})
    assert response.status_code == 200, response.text
    for n in (1, 2):
        response = await host.post(
            "/api/candidate", json={"roomId": room_id, "role": "host", "candidate": candidate(n)}
        )
        assert response.status_code == 200, response.text

    # Viewer: validate the room via diagnostics, then poll for the offer.
    async with httpx.AsyncClient(base_url=base) as anonymous:
        diagnostics = await anonymous.get("/api/diagnostics", params={"roomId": room_id})
        assert diagnostics.json()["exists"] is True
        joined = await join_room(anonymous, room_id)
    viewer_id = joined["viewerId"]
    viewer = httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {joined['viewerToken']}"}
    )
    as_viewer = {"roomId": room_id, "role": "viewer", "viewerId": viewer_id}
    desc = await poll(viewer, "/api/offer", as_viewer, "desc")
    assert desc == offer_sdp("h")
    # The offer is single-use: asking again gives nothing.
    assert (await viewer.get("/api/offer", params=as_viewer)).json() == {"desc": None}

    response = await viewer.post("/api/answer", json={"roomId": room_id, "desc": answer_sdp("v")})
    assert response.status_code == 200, response.text
    response = await viewer.post(
        "/api/candidate",
        json={
            "roomId": room_id,
            "role": "viewer",
            "viewerId": viewer_id,
            "candidate": candidate(3),
        },
    )
    assert response.status_code == 200, response.text
    # A host candidate sent after the viewer took the offer reaches that viewer too.
    await host.post(
        "/api/candidate", json={"roomId": room_id, "role": "host", "candidate": candidate(4)}
    )

    # Host polls for the answer and the viewer's candidates.
    answer = await poll(host, "/api/answer", {"roomId": room_id}, "desc")
    assert answer == answer_sdp("v")
    host_candidates = await poll(
        host, "/api/candidate", {"roomId": room_id, "role": "host"}, "candidates"
    )
    assert host_candidates == [{**candidate(3), "viewerId": viewer_id}]

    # Viewer polls for the host's candidates: early and late ones, in order.
    viewer_candidates = await poll(viewer, "/api/candidate", as_viewer, "candidates")
    assert viewer_candidates == [candidate(1), candidate(2), candidate(4)]

    await host.aclose()
    await viewer.aclose()


async def test_long_poll_returns_the_answer_and_empty_at_its_deadline(
    memory_server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=memory_server.base_url, timeout=40) as http:
        room = await create_room(http)
        joined = await join_room(http, room["roomId"])
        host_auth = {"Authorization": f"Bearer {room['hostToken']}"}
        viewer_auth = {"Authorization": f"Bearer {joined['viewerToken']}"}

        waiting = asyncio.create_task(
            http.get(
                "/api/answer", params={"roomId": room["roomId"], "wait": 20}, headers=host_auth
            )
        )
        await http.post(
            "/api/answer",
            headers=viewer_auth,
            json={"roomId": room["roomId"], "desc": answer_sdp("late")},
        )
        response = await asyncio.wait_for(waiting, 10)
        assert response.json()["desc"] == answer_sdp("late")
        assert response.json()["viewerId"] == joined["viewerId"]

        # Nothing comes: the long-poll returns empty at its deadline.
        response = await http.get(
            "/api/answer", params={"roomId": room["roomId"], "wait": 0.5}, headers=host_auth
        )
        assert response.json() == {"desc": None, "viewerId": None, "answers": []}


async def test_a_polling_client_learns_at_once_that_the_room_ended(
    any_server: ServerProcess,
) -> None:
    """GETs answer 410 room_ended once the room has ended, and a GET waiting when it ends
    returns 410 at once instead of 200 empty at its deadline."""
    async with httpx.AsyncClient(base_url=any_server.base_url, timeout=40) as http:
        room = await create_room(http)
        room_id = room["roomId"]
        joined = await join_room(http, room_id)
        host_auth = {"Authorization": f"Bearer {room['hostToken']}"}
        viewer_auth = {"Authorization": f"Bearer {joined['viewerToken']}"}
        waits = {
            path: asyncio.create_task(
                http.get(path, params={"roomId": room_id, "wait": 20}, headers=viewer_auth)
            )
            for path in ("/api/offer", "/api/candidate")
        }
        # Both are waiting (the server counts its long-polls) before the room ends.
        deadline = time.monotonic() + 10
        while "peerscreen_long_polls_waiting 2.0" not in (await http.get("/metrics")).text:
            assert time.monotonic() < deadline, "the GETs never waited"
            await asyncio.sleep(0.05)
        ended_at = time.monotonic()
        assert (await http.delete(f"/api/rooms/{room_id}", headers=host_auth)).status_code == 200
        for path, waiting in waits.items():
            response = await asyncio.wait_for(waiting, 10)
            assert response.status_code == 410, (path, response.text)
            assert response.json()["error"]["code"] == "room_ended"
        assert time.monotonic() - ended_at < 5, "the waiting GETs held on after the end"
        # Diagnostics tell the end, and nobody is reported as still there.
        info = (
            await http.get("/api/diagnostics", params={"roomId": room_id}, headers=host_auth)
        ).json()
        assert info["ended"] is True
        assert (info["hostPresence"], info["hostPresent"]) == ("left", False)
        assert [v["presence"] for v in info["viewers"]] == ["left"]
        # And every later call answers 410 at once, whoever makes it.
        for path, auth in (
            ("/api/offer", viewer_auth),
            ("/api/candidate", viewer_auth),
            ("/api/answer", host_auth),
            ("/api/candidate", host_auth),
        ):
            response = await http.get(path, params={"roomId": room_id, "wait": 3}, headers=auth)
            assert response.status_code == 410, (path, response.text)
            assert response.json()["error"]["code"] == "room_ended"


async def test_what_the_protocol_page_says_about_classic_calls(
    memory_server: ServerProcess,
) -> None:
    """The claims of docs/protocol.md's classic section, one by one."""
    async with httpx.AsyncClient(base_url=memory_server.base_url, timeout=40) as http:
        room = await create_room(http)
        room_id = room["roomId"]
        host_auth = {"Authorization": f"Bearer {room['hostToken']}"}

        # Every call needs the token but the diagnostics, which list viewers to the host.
        for path in ("/api/offer", "/api/answer", "/api/candidate"):
            response = await http.get(path, params={"roomId": room_id})
            assert response.status_code == 401, (path, response.text)
        response = await http.get("/api/diagnostics", params={"roomId": room_id})
        assert (response.status_code, response.json()["viewers"]) == (200, None)

        # A room offer has no mailbox number; candidates beside it are numbered 1, 2.
        posted = await http.post(
            "/api/offer", headers=host_auth, json={"roomId": room_id, "desc": offer_sdp("r")}
        )
        assert (posted.status_code, posted.json()) == (200, {"ok": True, "seq": None})
        for n in (1, 2):
            posted = await http.post(
                "/api/candidate",
                headers=host_auth,
                json={"roomId": room_id, "candidate": candidate(n)},
            )
            assert (posted.status_code, posted.json()["seq"]) == (200, n)

        # Unknown top-level fields are refused, naming the field.
        refused = await http.post(
            "/api/answer",
            headers=host_auth,
            json={"roomId": room_id, "desc": answer_sdp("x"), "sdp": "v=0"},
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "validation_error"
        assert "sdp" in refused.json()["error"]["message"]

        joined = await join_room(http, room_id)
        viewer_auth = {"Authorization": f"Bearer {joined['viewerToken']}"}
        # The token decides; a role or viewer id that is not the caller's is refused.
        wrong_role = await http.get(
            "/api/offer", params={"roomId": room_id, "role": "host"}, headers=viewer_auth
        )
        assert wrong_role.status_code == 403
        assert wrong_role.json()["error"]["message"] == (
            "This token belongs to a viewer, not a host."
        )
        posing = await http.post(
            "/api/candidate",
            headers=viewer_auth,
            json={"roomId": room_id, "viewerId": "v2222222222", "candidate": candidate(9)},
        )
        assert posing.status_code == 403
        assert posing.json()["error"]["message"] == "A viewer may act only as itself."

        taken = await http.get("/api/offer", params={"roomId": room_id}, headers=viewer_auth)
        assert taken.json() == {"desc": offer_sdp("r")}
        # After the offer is taken, candidates without viewerId are the taker's, numbered
        # in its mailbox (its first message was the audience count).
        posted = await http.post(
            "/api/candidate", headers=host_auth, json={"roomId": room_id, "candidate": candidate(3)}
        )
        assert posted.json()["seq"] == 2
        got = await http.get("/api/candidate", params={"roomId": room_id}, headers=viewer_auth)
        assert got.json()["candidates"] == [candidate(1), candidate(2), candidate(3)]

        # GET /api/answer: desc is the oldest answer; answers lists them all.
        second = await join_room(http, room_id)
        for who, tag in ((joined, "first"), (second, "second")):
            await http.post(
                "/api/answer",
                headers={"Authorization": f"Bearer {who['viewerToken']}"},
                json={"roomId": room_id, "desc": answer_sdp(tag)},
            )
        answers = (
            await http.get("/api/answer", params={"roomId": room_id}, headers=host_auth)
        ).json()
        assert (answers["desc"], answers["viewerId"]) == (answer_sdp("first"), joined["viewerId"])
        assert [a["viewerId"] for a in answers["answers"]] == [
            joined["viewerId"],
            second["viewerId"],
        ]
