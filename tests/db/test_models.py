"""The states of links and jobs: one enum each, stored as the plain strings the rows hold.

The strings are the contract with every row already written (and with operators' SQL):
no migration changed them, so the enums must name exactly these.
"""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError

from app.crypto.tokens import new_id, new_token, token_hash
from app.db.clock import db_now_plus, seconds
from app.db.models import ENDED_LINK_STATES, LIVE_JOB_STATES, Job, JobState, Link, LinkState
from app.db.session import transaction
from app.services import Services
from tests.conftest import AppClient


def test_link_states_are_the_strings_the_rows_hold() -> None:
    assert [state.value for state in LinkState] == ["pending", "ready", "failed", "deleted"]


def test_job_states_are_the_strings_the_rows_hold() -> None:
    assert [state.value for state in JobState] == [
        "queued",
        "running",
        "failed",
        "receiving",
        "following",
    ]


def test_a_state_equals_and_formats_as_its_string() -> None:
    assert (LinkState.READY, JobState.RUNNING) == ("ready", "running")
    assert f"{LinkState.READY} {JobState.RUNNING}" == "ready running"


def test_live_jobs_are_queued_or_running_and_ended_links_deleted_or_failed() -> None:
    assert set(LIVE_JOB_STATES) == {
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.RECEIVING,
        JobState.FOLLOWING,
    }
    assert set(ENDED_LINK_STATES) == {LinkState.DELETED, LinkState.FAILED}


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_state_columns_stay_varchar_16_as_the_migrations_made_them(dialect: Dialect) -> None:
    for column in (Link.state, Job.state):
        assert column.type.compile(dialect=dialect) == "VARCHAR(16)"


async def _insert_link(services: Services, **values: object) -> str:
    link_id = new_id()
    async with transaction(services.sessions) as session:
        await session.execute(
            insert(Link).values(
                id=link_id,
                token_hash=token_hash(new_token()),
                manage_token_hash=token_hash(new_token()),
                expires_at=db_now_plus(seconds(3600)),
                **values,
            )
        )
    return link_id


async def _stored_state(services: Services, link_id: str) -> str:
    async with services.sessions() as session:
        found = await session.scalar(
            text("SELECT state FROM links WHERE id = :id"), {"id": link_id}
        )
    assert isinstance(found, str)
    return found


async def test_a_link_state_is_written_as_its_string_and_read_back_as_its_member(
    client: AppClient,
) -> None:
    link_id = await _insert_link(client.services, state=LinkState.READY)
    assert await _stored_state(client.services, link_id) == "ready"
    async with client.services.sessions() as session:
        state = await session.scalar(select(Link.state).where(Link.id == link_id))
    assert state is LinkState.READY


async def test_a_new_link_is_pending_and_a_new_job_queued(client: AppClient) -> None:
    link_id = await _insert_link(client.services)
    job_id = new_id()
    async with transaction(client.services.sessions) as session:
        await session.execute(insert(Job).values(id=job_id, link_id=link_id))
    async with client.services.sessions() as session:
        link_state = await session.scalar(select(Link.state).where(Link.id == link_id))
        job_state = await session.scalar(select(Job.state).where(Job.id == job_id))
    assert (link_state, job_state) == (LinkState.PENDING, JobState.QUEUED)


async def test_writing_a_string_that_names_no_state_is_refused_and_changes_nothing(
    client: AppClient,
) -> None:
    link_id = await _insert_link(client.services, state=LinkState.READY)
    with pytest.raises(StatementError, match="'sealed' is not a valid LinkState"):
        async with transaction(client.services.sessions) as session:
            await session.execute(update(Link).where(Link.id == link_id).values(state="sealed"))
    assert await _stored_state(client.services, link_id) == "ready"
