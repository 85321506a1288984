"""peerscreen: self-hosted peer-to-peer screen sharing."""

__version__ = "0.1.0"
