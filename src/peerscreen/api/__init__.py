"""HTTP and WebSocket handlers: thin layers over :mod:`peerscreen.service`."""
