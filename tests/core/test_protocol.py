"""core/protocol.py: frames round-trip, every parse error says what it expected, close codes
have actions and match the docs, and no other module writes the protocol by hand."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from chinwag.core.errors import MalformedFrame, ProtocolViolation
from chinwag.core.protocol import (
    CaughtUp,
    ClientAction,
    CloseCode,
    CloseReason,
    ErrorBody,
    ErrorResponse,
    EventFrame,
    FrameType,
    Hello,
    Method,
    OkResponse,
    Request,
    ServerFrame,
    TypingSignal,
    caught_up_frame,
    client_action,
    event_frame,
    parse_client_frame,
    parse_server_frame,
)
from chinwag.core.typing import TypingState

ROOT = Path(__file__).resolve().parents[2]

SERVER_FRAMES: list[ServerFrame] = [
    Hello("s1", {"user_id": "alice", "anonymous": False}, 7, 1795279032.5),
    EventFrame(3, {"type": "receipt", "at": 1.5, "data": {"conversation_id": "c"}}),
    CaughtUp(0),
    CaughtUp(9),
    TypingSignal("c1", "bob", TypingState.PAUSED),
    OkResponse("r-1", {"server_time": 1.0, "head": 4}),
    OkResponse(None, {}),
    ErrorResponse("r.2", ErrorBody("not_found", "Not found.", {"property": "x"})),
    ErrorResponse(None, ErrorBody("invalid_request", "Expected request_id.")),
]


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda f: type(f).__name__)
def test_server_frames_round_trip(frame: ServerFrame) -> None:
    assert parse_server_frame(frame.serialize()) == frame
    assert parse_server_frame(frame.serialize().decode()) == frame


@pytest.mark.parametrize("method", list(Method))
def test_requests_round_trip(method: Method) -> None:
    request = Request("a_b.C-9", method, {"conversation_id": "c", "position": 3})
    assert parse_client_frame(request.serialize()) == request


def test_the_event_frame_splices_the_stored_json_unchanged() -> None:
    stored = b'{"type":"receipt","at":1.5,"data":{"z":1,"a":[1.0e3]}}'
    frame = event_frame(12, stored)
    assert frame == b'{"type":"event","cursor":12,"event":' + stored + b"}"
    assert parse_server_frame(frame) == EventFrame(12, orjson.loads(stored))


def test_caught_up_frame_is_what_the_dataclass_serializes() -> None:
    assert caught_up_frame(5) == CaughtUp(5).serialize()
    assert orjson.loads(caught_up_frame(5)) == {"type": "caught_up", "cursor": 5}


def test_a_request_without_data_gets_an_empty_object() -> None:
    raw = orjson.dumps({"type": "request", "request_id": "1", "method": "ping"})
    assert parse_client_frame(raw) == Request("1", Method.PING, {})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"not json", "Expected a JSON object, got text that is not JSON."),
        (b"[1, 2]", "Expected a JSON object, got an array."),
        (b'"hello"', "Expected a JSON object, got a string."),
        (b"null", "Expected a JSON object, got null."),
        (b"3", "Expected a JSON object, got an integer."),
    ],
)
def test_frames_that_are_not_objects_are_malformed(raw: bytes, expected: str) -> None:
    for parse in (parse_server_frame, parse_client_frame):
        with pytest.raises(MalformedFrame) as caught:
            parse(raw)
        assert caught.value.message == expected


def _request(**fields: Any) -> bytes:
    frame = {"type": "request", "request_id": "r1", "method": "ping", "data": {}}
    frame.update(fields)
    return orjson.dumps({k: v for k, v in frame.items() if v is not None})


@pytest.mark.parametrize(
    ("raw", "request_id", "expected"),
    [
        (_request(request_id=None), None, "Expected request_id: 1-64 characters"),
        (_request(request_id=""), None, "Expected request_id: 1-64 characters"),
        (_request(request_id="a" * 65), None, "Expected request_id: 1-64 characters"),
        (_request(request_id="a b"), None, "Expected request_id: 1-64 characters"),
        (_request(request_id=7), None, "Expected request_id: 1-64 characters"),
        (_request(type="response"), "r1", "Expected type 'request', got 'response'."),
        (_request(type=None), "r1", "Expected type 'request', got null."),
        (_request(method="nope"), "r1", "Unknown method 'nope'; expected one of message.send"),
        (_request(method=None), "r1", "Unknown method null; expected one of"),
        (_request(data=[1]), "r1", "Expected data to be an object."),
    ],
)
def test_bad_requests_say_what_was_expected_and_keep_a_valid_request_id(
    raw: bytes, request_id: str | None, expected: str
) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        parse_client_frame(raw)
    assert not isinstance(caught.value, MalformedFrame)
    assert caught.value.message.startswith(expected)
    assert caught.value.request_id == request_id
    assert caught.value.to_json()["error"]["id"] == "invalid_request"


def test_error_messages_never_echo_a_long_input() -> None:
    with pytest.raises(ProtocolViolation) as caught:
        parse_client_frame(_request(method="x" * 10_000))
    assert len(caught.value.message) < 200


def _server(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame)


HELLO = {"type": "hello", "session_id": "s", "user": {}, "head": 0, "server_time": 1}


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "nope"}, "Expected type to be one of hello, event, caught_up, signal, response"),
        ({"cursor": 1}, "Expected type to be one of"),
        ({**HELLO, "session_id": 5}, "Expected hello session_id to be a string, got an integer."),
        ({**HELLO, "user": []}, "Expected hello user to be an object, got an array."),
        ({**HELLO, "head": -1}, "Expected hello head to be at least 0, got -1."),
        ({**HELLO, "head": True}, "Expected hello head to be an integer, got a boolean."),
        ({**HELLO, "server_time": "x"}, "Expected hello server_time to be an integer or a"),
        ({"type": "event", "event": {}}, "Expected event cursor to be an integer, got nothing."),
        ({"type": "event", "cursor": 0, "event": {}}, "Expected event cursor to be at least 1"),
        ({"type": "event", "cursor": 1.5, "event": {}}, "Expected event cursor to be an integer"),
        ({"type": "event", "cursor": 1, "event": "x"}, "Expected event event to be an object"),
        ({"type": "caught_up"}, "Expected caught_up cursor to be an integer, got nothing."),
        ({"type": "signal", "signal": "presence", "data": {}}, "Expected signal 'typing', got"),
        ({"type": "signal", "signal": "typing"}, "Expected signal data to be an object"),
        (
            {"type": "signal", "signal": "typing", "data": {"state": "asleep"}},
            "Expected typing state started, paused or finished, got 'asleep'.",
        ),
        (
            {"type": "signal", "signal": "typing", "data": {"state": "started", "user_id": "u"}},
            "Expected typing conversation_id to be a string, got nothing.",
        ),
        ({"type": "response", "request_id": 3, "ok": True}, "Expected response request_id to"),
        ({"type": "response", "request_id": "r"}, "Expected response ok to be a boolean"),
        ({"type": "response", "ok": True, "data": 1}, "Expected response data to be an object"),
        ({"type": "response", "ok": False}, "Expected response error to be an object"),
        ({"type": "response", "ok": False, "error": {"message": "m"}}, "Expected error id to"),
        (
            {"type": "response", "ok": False, "error": {"id": "x", "message": "m", "data": 1}},
            "Expected error data to be an object, got an integer.",
        ),
    ],
)
def test_bad_server_frames_say_what_was_expected(frame: dict[str, Any], expected: str) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        parse_server_frame(_server(frame))
    assert caught.value.message.startswith(expected), caught.value.message


# -- close codes ---------------------------------------------------------------------


@pytest.mark.parametrize("code", list(CloseCode))
def test_every_close_code_has_a_client_action(code: CloseCode) -> None:
    assert isinstance(client_action(code, ""), ClientAction)


def test_close_actions_of_the_codes_a_client_must_tell_apart() -> None:
    assert client_action(1000) is ClientAction.STOP
    assert client_action(CloseCode.GOING_AWAY, CloseReason.GOING_AWAY) is ClientAction.RECONNECT
    assert client_action(4001, "authentication_required") is ClientAction.REAUTHENTICATE
    assert client_action(4003, "session_revoked") is ClientAction.REVOKED
    assert client_action(4003, "session_wiped") is ClientAction.WIPE
    assert client_action(4004, "session_expired") is ClientAction.REAUTHENTICATE
    assert client_action(4008, "resume_later") is ClientAction.RECONNECT_AFTER_PAUSE
    assert client_action(4029, "too_many_connections") is ClientAction.RECONNECT_AFTER_PAUSE
    assert client_action(4400, "anything") is ClientAction.FIX_CLIENT
    assert client_action(1009) is ClientAction.FIX_CLIENT


def test_an_unknown_close_code_is_waited_out_not_given_up_on() -> None:
    assert client_action(4999, "new") is ClientAction.RECONNECT_AFTER_PAUSE


def _docs_close_table() -> dict[int, str]:
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("### Close codes", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\|\s*\d{4}\s*\|", line)]
    return {int(row.split("|")[1]): row.split("|")[2].strip() for row in rows}


def test_the_docs_close_code_table_is_the_enum() -> None:
    table = _docs_close_table()
    assert sorted(table) == sorted(CloseCode)
    for reason in CloseReason:
        assert any(f"`{reason}`" in meaning for meaning in table.values()), reason


# -- nothing else writes the protocol ------------------------------------------------

FRAME_TYPES = frozenset(FrameType)
CLOSE_LITERALS = frozenset(code for code in CloseCode if code >= 1001 and code != 1006)
_SPLICED = re.compile(r'"(?:type|signal)"\s*:\s*"(?:' + "|".join(FRAME_TYPES) + '|typing)"')
EXEMPT = ("core/protocol.py", "core/close_codes.py")


def _is_frame_type(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in FRAME_TYPES


def _is_close_code(value: object) -> bool:
    return type(value) is int and value in CLOSE_LITERALS


def _violations(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if not isinstance(key, ast.Constant):
                    continue
                if key.value == "type" and _is_frame_type(value):
                    found.append((line, "frame type in a dict"))
                elif key.value == "signal" and isinstance(value, ast.Constant):
                    found.append((line, "signal frame in a dict"))
        elif isinstance(node, ast.Compare):
            if any(_is_frame_type(n) for n in (node.left, *node.comparators)):
                found.append((line, "frame type compared as a string"))
        elif isinstance(node, ast.MatchValue) and _is_frame_type(node.value):
            found.append((line, "frame type matched as a string"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if _SPLICED.search(text):
                found.append((line, "frame JSON written by hand"))
        elif isinstance(node, ast.Constant) and _is_close_code(node.value):
            found.append((line, f"close code {node.value!r} as a literal"))
    return found


def test_the_checker_catches_hand_written_frames_and_codes() -> None:
    source = """
a = {"type": "hello", "x": 1}
b = frame.get("type") != "request"
c = b'{"type":"event","cursor":'
d = Close(4008, "resume_later")
match kind:
    case "caught_up": pass
e = {"signal": "typing"}
"""
    assert len(_violations(ast.parse(source))) == 6
    innocent = 'x = {"type": "message.created", "event": 1}; y = kind == "receipt"; z = 4009'
    assert _violations(ast.parse(innocent)) == []


def test_no_module_writes_frames_or_close_codes_by_hand() -> None:
    found = []
    for path in sorted((ROOT / "src" / "chinwag").rglob("*.py")):
        relative = path.relative_to(ROOT / "src" / "chinwag").as_posix()
        if relative.startswith(EXEMPT):
            continue
        for line, what in _violations(ast.parse(path.read_text(), str(path))):
            found.append(f"{relative}:{line}: {what}")
    assert found == []
