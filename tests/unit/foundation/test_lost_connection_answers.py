"""A database connection that went away mid-request is a 503 the client may retry, whichever of
asyncpg's errors reports it: a rollback over a connection lost mid-statement raises
`InternalClientError` ("protocol is in the failed state"), which used to be a 500."""

from __future__ import annotations

import asyncpg
import pytest
from litestar import get
from litestar.testing import create_test_client

from consent.db.grouped import DB_UNAVAILABLE
from consent.errors import exception_handlers

pytestmark = pytest.mark.unit

LOST = [
    asyncpg.InternalClientError('cannot switch to state 1; protocol is in the "failed" state'),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    OSError("connection reset by peer"),
]


@pytest.mark.parametrize("error", LOST, ids=lambda e: type(e).__name__)
def test_a_lost_connection_is_a_503_problem_to_retry(error: Exception) -> None:
    @get("/write", sync_to_thread=False)
    def write() -> None:
        raise error

    with create_test_client([write], exception_handlers=exception_handlers()) as client:
        response = client.get("/write")
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/service-unavailable"
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize("error", LOST, ids=lambda e: type(e).__name__)
def test_the_grouped_writers_and_the_cli_count_it_as_the_database_gone(error: Exception) -> None:
    """Group commits (decisions, their log), `consent import` and `consent identifiers
    renormalise` all catch DB_UNAVAILABLE: one list of what "the database went away" means."""
    assert isinstance(error, DB_UNAVAILABLE)
