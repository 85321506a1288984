"""Settings: one typed place for every option, read from flags and the environment.

Every field can be set as ``PEERSCREEN_<NAME>``; ``REDIS_URL`` and ``AUTH_SECRET`` keep
the unprefixed names the original design used. The CLI builds one flag per field.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server configuration. Durations are in seconds, sizes in bytes."""

    model_config = SettingsConfigDict(env_prefix="PEERSCREEN_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port to listen on.")
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "PEERSCREEN_REDIS_URL", "redis_url"),
        description="Redis URL for shared state across processes (Redis 7 or later): "
        "redis://host:6379/0, rediss:// for TLS (?ssl_ca_certs=/path/ca.pem for a private CA), "
        "unix:///path.sock, or a Redis Cluster as "
        "redis+cluster://host1:7000,host2:7000; unset: in-memory store.",
    )
    redis_max_connections: int = Field(
        100,
        ge=1,
        le=10000,
        description="Connections to Redis a process keeps at most for calls other than "
        "signals (which share one pipelined connection); when all are busy, calls wait for "
        "one (up to 5 s) rather than fail.",
    )
    auth_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("AUTH_SECRET", "PEERSCREEN_AUTH_SECRET", "auth_secret"),
        description="When set, creating a room requires 'Authorization: Bearer <secret>'.",
    )
    room_ttl: float = Field(
        3600.0, gt=0, description="Room data expires this long after the room's last activity."
    )
    max_viewers: int = Field(10, ge=1, le=1000, description="Viewers allowed in one room.")
    grace_period: float = Field(
        30.0,
        gt=0,
        description="A participant gone this long is reported as left; "
        "must be longer than --heartbeat-interval.",
    )
    heartbeat_interval: float = Field(
        10.0,
        gt=0,
        description="Seconds between server pings on a WebSocket that sent nothing else; "
        "shorter than --heartbeat-timeout and --grace-period.",
    )
    heartbeat_timeout: float = Field(
        25.0,
        gt=0,
        description="A socket silent this long is dropped as dead; "
        "must be longer than --heartbeat-interval.",
    )
    hello_timeout: float = Field(
        10.0, gt=0, description="A new socket must authenticate within this time."
    )
    max_wait: float = Field(30.0, gt=0, le=30, description="Longest long-poll wait= accepted.")
    max_pending_messages: int = Field(
        1000, ge=10, description="Undelivered messages one participant may hold."
    )
    max_pending_bytes: int = Field(
        384 * 1024,
        ge=320 * 1024,
        description="Bytes of undelivered signaling one participant may hold; one sender "
        "may fill at most a quarter of it (at least one offer of the largest size).",
    )
    max_room_pending_bytes: int = Field(
        512 * 1024,
        ge=320 * 1024,
        description="Bytes of undelivered signaling all the mailboxes of one room may hold.",
    )
    rate_signal: str = Field(
        "600/minute",
        description="Offers, answers and candidates one participant may send, over any transport.",
    )
    max_connections_per_client: int = Field(
        100,
        ge=1,
        description="Open connections (HTTP, long-poll and WebSocket together) one client "
        "address may hold; trusted proxies are exempt, their clients are counted instead.",
    )
    header_timeout: float = Field(
        5.0, gt=0, le=60, description="A request's head must arrive within this time."
    )
    public_url: str | None = Field(
        None,
        description="The address viewers reach the server by (https://share.example.org): "
        "used for every link and QR code; unset: the request's validated Host header.",
    )
    offer_timeout: float = Field(
        60.0, gt=0, description="A viewer waits this long for the host's offer, then gives up."
    )
    stun_urls: str = Field(
        "", description="STUN servers for the page, comma-separated (stun:host:3478)."
    )
    turn_urls: str = Field(
        "",
        description="TURN servers, comma-separated (turn:host:3478?transport=udp, "
        "turns:host:5349); unset: no relay.",
    )
    turn_secret: SecretStr | None = Field(
        None,
        description="coturn's static-auth-secret: participants get short-lived credentials "
        "(TURN REST API); the secret itself never leaves the server.",
    )
    turn_username: str | None = Field(None, description="Static TURN username (no secret).")
    turn_password: SecretStr | None = Field(None, description="Static TURN password.")
    turn_ttl: int = Field(3600, ge=60, le=86400, description="Lifetime of TURN credentials.")
    turn: bool = Field(
        False, description="Start and supervise a local coturn with a generated secret."
    )
    turn_port: int = Field(3478, ge=1, le=65535, description="Port of the local coturn (--turn).")
    turn_host: str | None = Field(
        None, description="Address clients use to reach the local coturn (--turn)."
    )
    turn_relay_ports: str = Field(
        "49160-49200",
        pattern=r"^\d{1,5}-\d{1,5}$",
        description="Relay port range of the local coturn (--turn).",
    )
    turn_allow_private_peers: bool = Field(
        False,
        description="Let the local coturn (--turn) relay to loopback, private and "
        "link-local addresses (tests on one machine); off: it relays to public ones only.",
    )
    relay_only: bool = Field(
        False, description="Force every connection through TURN (iceTransportPolicy relay)."
    )
    janus: bool = Field(
        False,
        description="Start and supervise a local Janus (Debian package janus) for broadcast "
        "rooms, with a generated API secret, its API on loopback only.",
    )
    janus_urls: str = Field(
        "",
        description="Janus servers to use for broadcast rooms instead, comma-separated "
        "(ws://10.0.0.5:8188); each room goes to the least loaded one that answers.",
    )
    janus_api_secret: SecretStr | None = Field(
        None, description="The api_secret of the --janus-urls servers, if they have one."
    )
    janus_admin_key: SecretStr | None = Field(
        None,
        description="The VideoRoom plugin's admin_key on the --janus-urls servers, if set.",
    )
    janus_ice_addresses: str = Field(
        "",
        description="Addresses the local Janus (--janus) offers candidates on, "
        "comma-separated; unset: every non-loopback interface.",
    )
    janus_rtp_ports: str = Field(
        "40000-40999",
        pattern=r"^\d{1,5}-\d{1,5}$",
        description="UDP port range of the local Janus (--janus).",
    )
    mesh_max: int = Field(
        2,
        ge=1,
        le=100,
        description="Viewers at which a room moves from the host's browser serving each "
        "viewer to broadcast through Janus (with --janus or --janus-urls); measured: from "
        "2 viewers on, the host spends more in a mesh (benchmarks/README.md).",
    )
    max_viewers_broadcast: int = Field(
        300,
        ge=1,
        le=100_000,
        description="Viewers a broadcast room takes (--max-viewers stays the cap of mesh rooms).",
    )
    rate_rooms: str = Field("50/hour", description="Rooms one client address may create.")
    rate_api: str = Field("2000/hour", description="API calls one client address may make.")
    rate_chat: str = Field(
        "60/minute", description="Chat messages one participant may send in a room."
    )
    rate_passcode: str = Field(
        "10/minute", description="Wrong passcodes one client address may try on a room."
    )
    trusted_proxies: str = Field(
        "",
        description="Proxies (addresses or networks, comma-separated) whose X-Forwarded-For "
        "header names the client; unset: the connection's address is the client's.",
    )
    cors_origins: str = Field(
        "",
        description="Other origins (comma-separated) whose pages may call the API; "
        "unset: same origin only.",
    )
    ssl_certfile: str | None = Field(
        None, description="TLS certificate (PEM): serve https, which browsers need to share."
    )
    ssl_keyfile: str | None = Field(None, description="TLS private key (PEM) for the certificate.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")

    @model_validator(mode="after")
    def _check_heartbeat(self) -> Settings:
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ValueError(
                f"--heartbeat-timeout ({self.heartbeat_timeout:g} s) must be longer than "
                f"--heartbeat-interval ({self.heartbeat_interval:g} s)"
            )
        if self.grace_period <= self.heartbeat_interval:
            # Presence is refreshed once per heartbeat; a shorter grace would report
            # connected participants as gone.
            raise ValueError(
                f"--grace-period ({self.grace_period:g} s) must be longer than "
                f"--heartbeat-interval ({self.heartbeat_interval:g} s)"
            )
        return self

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        from .links import valid_host

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not valid_host(parts.netloc):
            raise ValueError(f"not an http(s) address such as https://share.example.org: {value!r}")
        if parts.query or parts.fragment:
            raise ValueError("the public URL takes no query or fragment")
        return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme = value.partition("://")[0]
        if scheme == "redis+cluster":
            from .store.redis_cluster import parse_cluster_url

            parse_cluster_url(value)  # its ValueError says what is wrong
        elif scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                "not a Redis URL such as redis://localhost:6379/0 or "
                f"redis+cluster://host1:7000,host2:7000: {value!r}"
            )
        else:
            from .store.connect import RedisAddress

            RedisAddress.from_url(value)  # its ValueError names the bad setting
        return value

    @field_validator("rate_rooms", "rate_api", "rate_chat", "rate_passcode", "rate_signal")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate such as '50/hour' or '60/minute': {value!r}") from exc
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        import ipaddress

        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: set both or neither")
        return self

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_certfile else "http"

    @property
    def store_kind(self) -> str:
        return "redis" if self.redis_url else "memory"
