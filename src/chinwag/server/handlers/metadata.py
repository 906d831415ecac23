"""Conversation metadata: its shape, its byte budget, and dotted-path patches.

Metadata is an object whose values are strings or (nested) objects, at most
``max_metadata_bytes`` of canonical JSON (sorted keys, no spaces): without a budget every
PATCH could add to it, and each change would cost more to decode, re-encode and announce.
A change is announced as the patch that was applied (``conversation.updated``), not as the
whole metadata, so one small PATCH stores a small event for each participant; the patch
itself is held to the same budget.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from chinwag.core.errors import InvalidRequest, MetadataTooLarge
from chinwag.core.ids import user_id_problem

__all__ = [
    "MAX_METADATA_DEPTH",
    "Patch",
    "apply_patch",
    "canonical",
    "check_budget",
    "check_metadata",
    "parse_patch",
]

MAX_METADATA_DEPTH = 16

Patch = dict[str, Any]
"""``{"set": {"a.b": value}, "delete": ["c"]}``: sets first, then deletes."""


_invalid = InvalidRequest.of_property


def check_metadata(value: object, prop: str = "metadata", depth: int = 0) -> dict[str, Any]:
    """Metadata is an object whose values are strings or (nested) objects; keys have no dots
    so that dotted paths in PATCH are unambiguous."""
    if not isinstance(value, dict):
        raise _invalid(prop, "expected an object")
    if depth > MAX_METADATA_DEPTH:
        raise _invalid(prop, f"nested deeper than {MAX_METADATA_DEPTH} levels")
    for key, item in value.items():
        if not isinstance(key, str) or not key or "." in key or user_id_problem(key):
            problem = "keys must be non-empty strings without dots or control characters"
            raise _invalid(prop, problem)
        if isinstance(item, dict):
            check_metadata(item, prop, depth + 1)
        elif not isinstance(item, str) or _has_surrogate(item):
            raise _invalid(prop, "values must be strings or objects")
    return value


def _has_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def canonical(value: object) -> bytes:
    """The bytes the budget counts: sorted keys, no insignificant whitespace."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def check_budget(value: object, max_bytes: int) -> bytes:
    """``value``'s canonical JSON, or 413 ``metadata_too_large`` naming the limit."""
    encoded = canonical(value)
    if len(encoded) > max_bytes:
        raise MetadataTooLarge(
            f"Conversation metadata is limited to {max_bytes} bytes of JSON; "
            f"this would be {len(encoded)}.",
            data={"max_bytes": max_bytes},
        )
    return encoded


def _path(path: object) -> list[str]:
    if not isinstance(path, str) or not all(path.split(".")):
        raise _invalid("metadata", "paths are dot-separated non-empty keys")
    return path.split(".")


def parse_patch(changes: object, max_bytes: int) -> Patch:
    """A well-formed patch within the budget, with only ``set`` and ``delete`` present."""
    if not isinstance(changes, dict) or not set(changes) <= {"set", "delete"}:
        raise _invalid("metadata", 'expected {"set": {path: value}, "delete": [path]}')
    sets, deletes = changes.get("set", {}), changes.get("delete", [])
    if not isinstance(sets, dict) or not isinstance(deletes, list):
        raise _invalid("metadata", '"set" must be an object and "delete" a list')
    for path, value in sets.items():
        _path(path)
        check_metadata({"value": value})
    for path in deletes:
        _path(path)
    patch: Patch = {"set": sets, "delete": deletes}
    check_budget(patch, max_bytes)
    return patch


def apply_patch(meta: dict[str, Any], patch: Patch) -> dict[str, Any]:
    """``patch`` (from :func:`parse_patch`) applied to a copy of ``meta``."""
    result = copy.deepcopy(meta)
    for path, value in patch["set"].items():
        keys = _path(path)
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise _invalid("metadata", f"{path!r} passes through a string value")
        node[keys[-1]] = value
    for path in patch["delete"]:
        keys = _path(path)
        parent: Any = result
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(keys[-1], None)
    return check_metadata(result)
