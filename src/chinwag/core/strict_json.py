"""JSON parsing that accepts exactly RFC 8259 and nothing Python adds.

Python's ``json`` takes ``NaN``/``Infinity``, keeps the last of duplicate keys and decodes
UTF-16 bytes; each of those lets two parsers read one token differently (RFC 8725 §3.7).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["StrictJSONError", "loads_object", "loads_strict"]


class StrictJSONError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"duplicate member {key[:40]!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def loads_strict(data: bytes | str) -> Any:
    """Parse UTF-8 JSON strictly; raise StrictJSONError on anything doubtful."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if text.startswith("\ufeff"):
            raise StrictJSONError("byte order mark")
        return _DECODER.decode(text)
    except StrictJSONError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StrictJSONError(type(exc).__name__) from None


def loads_object(data: bytes | str) -> dict[str, Any]:
    value = loads_strict(data)
    if not isinstance(value, dict):
        raise StrictJSONError("not a JSON object")
    return value
