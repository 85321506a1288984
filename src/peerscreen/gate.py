"""How many connections each client address holds, and the cap on them."""

from __future__ import annotations

from .errors import ErrorCode, PeerscreenError
from .ratelimit import Network, is_trusted


class ConnectionGate:
    """Counts open connections per client address and refuses those over the cap."""

    def __init__(self, per_client: int, exempt: list[Network]) -> None:
        self.per_client = per_client
        self.exempt = exempt
        self._open: dict[str, int] = {}
        self._holders: dict[int, str] = {}  # holder -> the address counted for it

    def admit(self, holder: int, address: str | None) -> bool:
        """Count a new connection (``holder`` names it until :meth:`release`); False, and
        not counted, when its address is at the cap."""
        if address is None or is_trusted(address, self.exempt):
            return True
        held = self._open.get(address, 0)
        if held >= self.per_client:
            return False
        self._open[address] = held + 1
        self._holders[holder] = address
        return True

    def release(self, holder: int) -> None:
        """The connection closed; safe to call twice."""
        address = self._holders.pop(holder, None)
        if address is None:
            return
        left = self._open[address] - 1
        if left:
            self._open[address] = left
        else:
            del self._open[address]

    def held_by(self, address: str) -> int:
        return self._open.get(address, 0)

    def refusal(self) -> PeerscreenError:
        """The error for a connection over the cap (429)."""
        return PeerscreenError(
            ErrorCode.TOO_MANY_CONNECTIONS,
            f"Too many open connections from your address (at most {self.per_client}). "
            "Close some, then try again.",
        )
