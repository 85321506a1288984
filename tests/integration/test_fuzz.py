"""Property test: no input makes any endpoint answer 5xx or crash the server."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..support.processes import ServerProcess

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
# Field names the API uses, so generated bodies get past "unknown field" now and then.
known_fields = st.sampled_from(
    [
        "roomId",
        "viewerId",
        "role",
        "desc",
        "candidate",
        "type",
        "sdp",
        "to",
        "text",
        "name",
        "passcode",
        "locked",
        "after",
        "wait",
    ]
)
bodies = st.one_of(
    json_values,
    st.dictionaries(known_fields, json_values, max_size=6),
    st.binary(max_size=200),
)
path_texts = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20),
    st.sampled_from(["abcd-efghj-kmnp", "ABCD EFGHJ KMNP", "host", "v0000000000", "..", "%00"]),
)
tokens = st.one_of(st.none(), st.text(max_size=60), st.just("host.x"), st.just("v123.x"))


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


@pytest.fixture(scope="module")
def spec(memory_server: ServerProcess) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(memory_server.base_url + "/openapi.json").json()
    return result


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_input_gets_a_server_error(
    memory_server: ServerProcess, spec: dict[str, Any], data: st.DataObject
) -> None:
    method, template = data.draw(st.sampled_from(operations(spec)))
    path = template
    for name in ("room_id", "viewer_id"):
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", quote(data.draw(path_texts), safe=""))
    query = data.draw(st.dictionaries(known_fields, st.text(max_size=20), max_size=4))
    headers = {}
    token = data.draw(tokens)
    if token is not None and token.strip() and token.isascii() and token.isprintable():
        headers["Authorization"] = f"Bearer {token.strip()}"
    body = data.draw(bodies)
    kwargs: dict[str, Any] = {"params": query, "headers": headers}
    if method in ("POST", "PATCH"):
        if isinstance(body, bytes):
            kwargs["content"] = body
            headers["Content-Type"] = "application/json"
        else:
            kwargs["json"] = body
    response = httpx.request(method, memory_server.base_url + path, timeout=30, **kwargs)
    assert response.status_code < 500, (method, path, kwargs, response.text)
    if (
        response.headers.get("content-type", "").startswith("application/json")
        and response.status_code >= 400
    ):
        error = response.json()["error"]
        assert error["code"] and error["message"]


def test_the_server_still_serves_after_the_fuzzing(memory_server: ServerProcess) -> None:
    assert httpx.get(memory_server.base_url + "/healthz").status_code == 200
    assert httpx.post(memory_server.base_url + "/api/rooms").status_code == 201
