"""The per-address connection cap, without a server."""

from __future__ import annotations

from peerscreen.gate import ConnectionGate
from peerscreen.ratelimit import parse_networks


def test_each_address_holds_at_most_its_cap_and_gets_places_back() -> None:
    gate = ConnectionGate(2, parse_networks("10.0.0.0/8"))
    assert gate.admit(1, "192.0.2.1") and gate.admit(2, "192.0.2.1")
    assert not gate.admit(3, "192.0.2.1")
    assert gate.admit(4, "192.0.2.2")  # another address is not affected
    gate.release(1)
    gate.release(1)  # twice is harmless
    assert gate.held_by("192.0.2.1") == 1
    assert gate.admit(5, "192.0.2.1")
    # Trusted proxies and unknown peers are not counted here.
    assert all(gate.admit(10 + n, "10.1.2.3") for n in range(5))
    assert gate.admit(20, None)
    assert gate.held_by("10.1.2.3") == 0
    refusal = gate.refusal()
    assert refusal.status == 429 and "at most 2" in refusal.message
