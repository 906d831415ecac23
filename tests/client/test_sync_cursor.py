"""Cursor arithmetic and historic-sync policies (pure)."""

from __future__ import annotations

import pytest

from chinwag.core.sync_cursor import CursorVerdict, SyncPolicy, classify, history_start


@pytest.mark.parametrize(
    ("cursor", "incoming", "verdict"),
    [
        (0, 1, CursorVerdict.APPLY),
        (7, 8, CursorVerdict.APPLY),
        (7, 7, CursorVerdict.DUPLICATE),
        (7, 3, CursorVerdict.DUPLICATE),
        (7, 9, CursorVerdict.GAP),
    ],
)
def test_classify(cursor: int, incoming: int, verdict: CursorVerdict) -> None:
    assert classify(cursor, incoming) is verdict


def test_classify_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="cursor"):
        classify(-1, 1)


def test_all_history_starts_at_zero() -> None:
    assert history_start(SyncPolicy.all(), last_position=900, read_position=10) == 0


def test_last_n() -> None:
    assert history_start(SyncPolicy.last(50), last_position=900, read_position=0) == 850
    assert history_start(SyncPolicy.last(50), last_position=20, read_position=0) == 0


def test_from_earliest_unread() -> None:
    policy = SyncPolicy.from_earliest_unread()
    assert history_start(policy, last_position=900, read_position=880) == 880
    assert history_start(policy, last_position=900, read_position=900) == 899
    assert history_start(policy, last_position=0, read_position=0) == 0


def test_last_n_needs_a_count() -> None:
    with pytest.raises(ValueError, match="LAST_N"):
        SyncPolicy.last(0)
