"""Progress of long CLI work (`keys rotate`, `identifiers renormalise`) when stderr is a file:
a job runner's log shows the run is alive, without a line per batch."""

from __future__ import annotations

import time

import pytest

from consent.cli import _progress


def test_a_log_gets_a_line_per_interval_and_the_final_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    show = _progress("checked", every=0.2)
    for done in range(1, 6):  # five batches in well under the interval: no line yet
        show(done, 100)
    assert capsys.readouterr().err == ""
    time.sleep(0.25)
    show(6, 100)  # the interval has passed: one line
    show(7, 100)  # and not again at once
    time.sleep(0.25)
    show(50, 100)
    show(100, 100)  # the final count, whenever it comes
    assert capsys.readouterr().err.splitlines() == [
        "checked: 6/100",
        "checked: 50/100",
        "checked: 100/100",
    ]


def test_a_short_run_into_a_log_is_its_final_count_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    show = _progress("re-wrapped")
    for done in range(1, 4):
        show(done, 3)
    assert capsys.readouterr().err == "re-wrapped: 3/3\n"
