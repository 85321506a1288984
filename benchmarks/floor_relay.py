"""The least a Python relay can do: PeerJS's wire protocol on peerscreen's WebSocket layer.

Not a product: a yardstick for the relay benchmark (``--servers python-floor``). It does
what PeerJS server does per message and nothing more (parse the JSON, find the
addressee's socket by id, add the sender, encode, send), on the same event loop (uvloop)
and WebSocket protocol (:mod:`peerscreen.websocket`) as peerscreen, with no validation,
store, sequence numbers, budgets, rate limits, presence or metrics. Its CPU per message
is the floor under peerscreen's in Python: what separates it from PeerJS is the runtime,
what separates peerscreen from it is peerscreen's own work.

    python benchmarks/floor_relay.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, ClassVar
from urllib.parse import parse_qs

import uvloop
from pydantic_core import from_json, to_json

from peerscreen.websocket import State, UpgradeRequest, WebSocketProtocol

OPEN = b'{"type":"OPEN"}'


class FloorPeer:
    """The handler of one peer's socket."""

    __slots__ = ("peer_id", "peers", "ws")

    def __init__(self, ws: WebSocketProtocol, peer_id: str, peers: dict[str, Any]) -> None:
        self.ws = ws
        self.peer_id = peer_id
        self.peers = peers

    def opened(self) -> None:
        self.peers[self.peer_id] = self.ws
        self.ws.send_text(OPEN)

    def received(self, text: str) -> None:
        message = from_json(text)
        kind = message.get("type")
        if kind == "HEARTBEAT":
            return
        dst = message.get("dst")
        target = self.peers.get(dst)
        if target is not None and target.state is State.OPEN:
            payload = message.get("payload")
            target.send_text(
                to_json({"type": kind, "src": self.peer_id, "dst": dst, "payload": payload})
            )

    def writable(self) -> None:
        pass

    def closed(self) -> None:
        if self.peers.get(self.peer_id) is self.ws:
            del self.peers[self.peer_id]


class FloorProtocol(WebSocketProtocol):
    max_message = 65536
    write_stall_timeout = 30.0
    peers: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        self._query = ""
        self._head = b""

    def data_received(self, data: bytes) -> None:
        if self.state is State.HANDSHAKE:
            # A plain asyncio server, not uvicorn: the head may come in pieces.
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            target = self._head.split(b" ", 2)[1].decode("latin-1")
            self._query = target.partition("?")[2]
            data, self._head = self._head, b""
        super().data_received(data)

    def accept(self, request: UpgradeRequest) -> FloorPeer:
        peer_id = parse_qs(self._query).get("id", [""])[0]
        return FloorPeer(self, peer_id, self.peers)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FloorProtocol, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
