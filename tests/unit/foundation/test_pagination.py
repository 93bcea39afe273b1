"""`page_of`: a list fetches `limit + 1` rows; the page holds at most `limit` of them and has a
cursor only when the extra row shows that another item follows."""

from __future__ import annotations

import pytest

from consent.pagination import page_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_rows_than_limit_plus_one_are_the_last_page(n: int) -> None:
    rows = list(range(n))
    assert page_of(rows, 2, str) == (rows, None)


def test_an_extra_row_gives_a_cursor_after_the_last_item_kept() -> None:
    assert page_of([5, 4, 3], 2, lambda r: f"after {r}") == ([5, 4], "after 4")


def test_paging_through_n_rows_returns_each_once_with_no_empty_page() -> None:
    rows = list(range(7))
    for limit in range(1, 9):
        seen: list[int] = []
        start = 0
        while True:
            items, cursor = page_of(rows[start : start + limit + 1], limit, str)
            assert items
            seen += items
            if cursor is None:
                break
            start = int(cursor) + 1
        assert seen == rows
