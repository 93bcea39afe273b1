"""What `consent policy reload` says about each process's answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent.decisions.policy import ReloadAck, describe_ack

pytestmark = pytest.mark.unit
ROOT = Path("/srv/policies")


def test_a_process_serving_the_checked_bundle() -> None:
    ack = ReloadAck(pid=7, ok=True, revision="sha256:new", root=str(ROOT))
    assert describe_ack(ack, "sha256:new", ROOT) == "process 7: serving sha256:new"


def test_a_process_that_refused_keeps_its_bundle() -> None:
    ack = ReloadAck(pid=7, ok=False, revision="sha256:old", error="rego_parse_error", root=None)
    assert describe_ack(ack, "sha256:new", ROOT) == (
        "process 7: refused (rego_parse_error); still serving sha256:old"
    )


def test_a_process_reading_another_directory_is_named_with_it() -> None:
    ack = ReloadAck(pid=7, ok=True, revision="sha256:other", root="/opt/other")
    line = describe_ack(ack, "sha256:new", ROOT)
    assert line.startswith("process 7: serving sha256:other, not sha256:new: ")
    assert "it loads its policy from /opt/other (its CONSENT_POLICY_DIR), not from " in line


@pytest.mark.parametrize("root", [str(ROOT), None])
def test_a_bundle_edited_after_the_check_asks_for_another_reload(root: str | None) -> None:
    ack = ReloadAck(pid=7, ok=True, revision="sha256:newer", root=root)
    assert describe_ack(ack, "sha256:new", ROOT).endswith(
        "the bundle changed again after this command checked it: run the reload again"
    )
