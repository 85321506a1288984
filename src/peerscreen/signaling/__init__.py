"""The signaling service: the room rules applied to a store, shared by every transport.

REST, long-poll and WebSocket handlers are thin; each call comes here, so a message posted
over one transport reaches a participant listening on any other. One concept a module:

- :mod:`.service`: rooms and their participants (create, join, leave, end, status)
- :mod:`.access`: tokens, passcodes and locks: who may do what
- :mod:`.mail`: signaling messages put in mailboxes, within their budgets
- :mod:`.longpoll`: reading mailboxes over HTTP, waiting for mail
- :mod:`.chat`: the room's chat
"""

from .access import parse_room_id
from .service import Signaling

__all__ = ["Signaling", "parse_room_id"]
