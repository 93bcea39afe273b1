"""`consent audit …` as an operator or auditor runs it: clear one-line failures, honest exit codes
(0 done, 1 failed, 2 bad arguments), never a traceback and never a false "ok"."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.verify_offline import verify_export
from consent.db.database import Database
from tests.integration.conftest import Catalog
from tests.support.cli import cli_env, run_consent

pytestmark = pytest.mark.integration


def _run(args: list[str], database_dsn: str, keys_dir: Path, tmp_path: Path) -> tuple[int, str]:
    run = run_consent("audit", *args, env=cli_env(database_dsn, keys_dir, tmp_path))
    assert "Traceback" not in run.stderr, run.stderr
    return run.returncode, run.stderr


def test_verify_of_an_unknown_tenant_fails_instead_of_passing(
    database_dsn: str, keys_dir: Path, tmp_path: Path, db: Database
) -> None:
    """A mistyped tenant id verified nothing and exited 0 ("verified 0 logs")."""
    missing = str(uuid.uuid4())
    code, err = _run(["verify", "--tenant", missing], database_dsn, keys_dir, tmp_path)
    assert code == 1, err
    assert f"tenant {missing} has no audit log" in err
    code, err = _run(["verify", "--tenant", "not-a-tenant"], database_dsn, keys_dir, tmp_path)
    assert code == 2, err
    assert "--tenant" in err


def test_export_without_a_selection_is_a_usage_error(
    database_dsn: str, keys_dir: Path, tmp_path: Path, db: Database
) -> None:
    out = tmp_path / "export.json"
    tenant = str(uuid.uuid4())
    for selection in (
        [],
        ["--since", "2026-01-01T00:00:00+00:00"],
        ["--subject", str(uuid.uuid4()), "--until", "2026-01-01T00:00:00+00:00"],
    ):
        code, err = _run(
            ["export", "--tenant", tenant, *selection, "--out", str(out)],
            database_dsn,
            keys_dir,
            tmp_path,
        )
        assert code == 2, err
        assert "give --subject, or both --since and --until" in err
    code, err = _run(
        ["export", "--tenant", tenant, "--subject", str(uuid.uuid4()), "--out", str(out)],
        database_dsn,
        keys_dir,
        tmp_path,
    )
    assert code == 1, err
    assert err.strip() == "consent audit export: This tenant has no audit log yet."
    assert not out.exists()


def test_monitor_of_an_unreachable_service_fails_in_one_line(
    database_dsn: str, keys_dir: Path, tmp_path: Path, signer: NoteSigner
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    state = tmp_path / "monitor.json"
    code, err = _run(
        [
            "monitor",
            "--url",
            f"http://127.0.0.1:{port}",
            "--api-key",
            "k",
            "--vkey",
            signer.vkey,
            "--state",
            str(state),
        ],
        database_dsn,
        keys_dir,
        tmp_path,
    )
    assert code == 1, err
    assert err.startswith(f"consent audit monitor: cannot reach http://127.0.0.1:{port}: "), err
    assert "URLError" not in err, err
    assert not state.exists()


async def test_a_regulator_verifies_an_export_file_alone(
    client: Any,
    catalog: Catalog,
    integrator: Integrator,
    signer: NoteSigner,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """Nothing checked an export file: a regulator had to write an RFC 6962 verifier first."""
    for _ in range(3):
        written = await catalog.consent(
            identifier={"type": "device", "value": "regulator-1"},
            choices=[{"purpose": "analytics", "choice": "granted"}],
        )
    await integrator.integrate_all()
    answer = await client.get(
        "/v1/audit/export", params={"subject_id": written["subject_id"]}, headers=catalog.h
    )
    assert answer.status_code == 200, answer.text
    document = answer.content
    result = verify_export(document, signer.vkey)
    assert result.ok, result.reason
    assert result.entries == 3

    # The file's own key proves nothing: a stranger's trusted key rejects it.
    stranger = NoteSigner.from_seed("consent.local/audit", bytes(range(32)))
    assert not verify_export(document, stranger.vkey).ok
    # One changed leaf is named by its index.
    data = json.loads(document)
    first = data["entries"][0]
    leaf = base64.b64decode(first["leaf"]).replace(b"granted", b"denied!")
    first["leaf"] = base64.b64encode(leaf).decode()
    forged = json.dumps(data).encode()
    result = verify_export(forged, signer.vkey)
    assert (result.ok, result.first_bad_index) == (False, first["leaf_index"])

    good, bad = tmp_path / "export.json", tmp_path / "forged.json"
    good.write_bytes(document)
    bad.write_bytes(forged)
    env = cli_env(database_dsn, keys_dir, tmp_path)
    checked = run_consent("audit", "verify-export", str(good), "--vkey", signer.vkey, env=env)
    assert checked.returncode == 0, checked.stderr
    # The result alone on stdout (README: "their results alone go to stdout").
    assert checked.stdout.startswith("ok: 3 entries are in consent.local/audit/"), checked.stdout
    assert "ok: " not in checked.stderr
    code, err = _run(
        ["verify-export", str(bad), "--vkey", signer.vkey], database_dsn, keys_dir, tmp_path
    )
    assert code == 1, err
    assert err.startswith(f"FAILED: {bad}: entry {first['leaf_index']}:"), err

    # `consent audit verify` and `export`: their results on stdout too.
    verified = run_consent("audit", "verify", "--tenant", catalog.tenant.id, env=env)
    assert verified.returncode == 0, verified.stderr
    lines = verified.stdout.splitlines()
    assert lines[0].startswith("ok: consent.local/audit/"), verified.stdout
    assert lines[-1].startswith("verified 1 logs in "), verified.stdout
    assert "ok: " not in verified.stderr
    out = tmp_path / "by-cli.json"
    exported = run_consent(
        "audit", "export", "--tenant", catalog.tenant.id, "--subject", written["subject_id"],
        "--out", str(out), env=env,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == f"wrote 3 entries with proofs to {out}\n"
    assert verify_export(out.read_bytes(), signer.vkey).ok


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--vkey", "garbage"],
        ["verify-export", "export.json", "--vkey", "example.org+00000000+AQ"],
        ["integrate", "--loop", "--interval", "-5"],
        ["integrate", "--sign-interval", "nan"],
        ["monitor", "--url", "http://127.0.0.1:9", "--api-key", "k", "--vkey", "x", "--state", "s"],
        [
            "export",
            "--tenant",
            str(uuid.UUID(int=1)),
            "--subject",
            str(uuid.UUID(int=2)),
            "--start",
            "-1",
            "--out",
            "e.json",
        ],
    ],
)
def test_an_impossible_argument_is_a_usage_error_in_one_line(
    args: list[str], database_dsn: str, keys_dir: Path, tmp_path: Path
) -> None:
    """A malformed verifier key was a NoteError traceback; a negative or NaN interval ran a
    loop without pause; a negative leaf index asked the database. Exit 2, naming the option."""
    code, err = _run(args, database_dsn, keys_dir, tmp_path)
    assert code == 2, err
    assert "error: argument --" in err
    assert not list(tmp_path.glob("*.json"))


def test_every_export_option_says_what_it_takes(
    database_dsn: str, keys_dir: Path, tmp_path: Path
) -> None:
    run = run_consent("audit", "export", "--help", env=cli_env(database_dsn, keys_dir, tmp_path))
    assert run.returncode == 0, run.stderr
    described = {
        line.split()[0]: line for line in run.stdout.splitlines() if line.startswith("  --")
    }
    for option in ("--tenant", "--subject", "--since", "--until", "--start", "--out"):
        # "  --out OUT   the JSON file to write": more than the option and its metavar
        assert len(described[option].split()) > 2, described[option]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "consent audit verify-export: cannot read {file}: No such file or directory"),
        (
            b'{"format": "consent-audit-export/v1", "tree_size": 1, "entries": []}',
            "consent audit verify-export: export file: no 'checkpoint' field",
        ),
    ],
    ids=["missing-file", "no-checkpoint"],
)
def test_verify_export_says_what_is_wrong_with_the_file_in_words(
    content: bytes | None,
    said: str,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
    signer: NoteSigner,
) -> None:
    """`export file: 'checkpoint'` (a bare key name) and `[Errno 2] …` were what an auditor got."""
    file = tmp_path / "export.json"
    if content is not None:
        file.write_bytes(content)
    code, err = _run(
        ["verify-export", str(file), "--vkey", signer.vkey], database_dsn, keys_dir, tmp_path
    )
    assert code == 1, err
    assert err.strip() == said.format(file=file), err
