"""Broadcast rooms: the media server (Janus) that forwards one upload to many viewers."""
