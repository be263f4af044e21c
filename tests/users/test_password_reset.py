"""Password reset by email: a real arq worker sends through the real SMTP adapter to a local
SMTP server, and the tests read what it received."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.core.config import Settings
from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory, run_worker_burst
from tests.conftest import queued_jobs as queued_jobs_of
from tests.databases import operator_database
from tests.helpers import assert_problem, error_fields
from tests.mail import MailSink

RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"
NEW_PASSWORD = "a-brand-new-passphrase"


async def run_worker(settings: Settings) -> None:
    """Every queued job, by real arq workers with a runtime of their own."""
    await run_worker_burst(settings)


async def queued_jobs(settings: Settings) -> list[str]:
    return [job.function for job in await queued_jobs_of(settings, "users")]


def token_in(mail: MailSink) -> str:
    (received,) = mail.received
    match = re.search(r"token=([A-Za-z0-9_\-]+)", received.body)
    assert match, received.body
    return match.group(1)


async def reset_rows(app: FastAPI) -> list[dict[str, Any]]:
    async with operator_database(app.state.runtime).session() as session:
        rows = await session.execute(text("SELECT * FROM users.password_reset_tokens"))
        return [dict(row._mapping) for row in rows]


async def emailed_token(
    client: httpx.AsyncClient, settings: Settings, mail: MailSink, user: TestUser
) -> str:
    response = await client.post(RESET, json={"email": user.email})
    assert response.status_code == 202
    await run_worker(settings)
    return token_in(mail)


async def confirm(client: httpx.AsyncClient, token: str, password: str) -> httpx.Response:
    return await client.post(CONFIRM, json={"token": token, "new_password": password})


async def test_a_real_account_gets_exactly_one_email_with_a_working_token(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    settings: Settings,
    mail: MailSink,
    app: FastAPI,
) -> None:
    user = await make_user()
    local, domain = user.email.split("@")
    response = await client.post(RESET, json={"email": f" {local}@{domain.upper()} "})
    assert response.status_code == 202
    assert await queued_jobs(settings) == ["users.send_password_reset"]
    assert mail.received == []  # sent by the worker, not by the request

    await run_worker(settings)

    assert len(mail.received) == 1
    received = mail.received[0]
    assert received.recipients == [user.email]
    assert received.message["Subject"] == "Reset your Keystone password"
    token = token_in(mail)
    rows = await reset_rows(app)
    assert [row["token_digest"] for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in str(rows)


async def test_an_unknown_email_gets_the_same_answer_and_no_email(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    settings: Settings,
    mail: MailSink,
    app: FastAPI,
) -> None:
    user = await make_user()
    known = await client.post(RESET, json={"email": user.email})
    unknown = await client.post(RESET, json={"email": "nobody@example.com"})
    assert (known.status_code, known.content) == (unknown.status_code, unknown.content)
    assert known.status_code == 202
    assert await queued_jobs(settings) == ["users.send_password_reset"]  # the known one only
    await run_worker(settings)
    assert [m.recipients for m in mail.received] == [[user.email]]


async def test_a_disabled_account_gets_no_email(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings, mail: MailSink
) -> None:
    admin = await make_user(Role.ADMIN)
    user = await make_user()
    await client.post(f"/api/v1/users/{user.id}/disable", headers=admin.headers)
    assert (await client.post(RESET, json={"email": user.email})).status_code == 202
    await run_worker(settings)
    assert mail.received == []


async def test_confirming_sets_the_password_and_ends_every_session(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings, mail: MailSink
) -> None:
    user = await make_user()
    session = (
        await client.post(LOGIN, data={"username": user.email, "password": user.password})
    ).json()
    token = await emailed_token(client, settings, mail, user)

    assert (await confirm(client, token, NEW_PASSWORD)).status_code == 204

    assert_problem(await client.get(ME, headers=user.headers), 401)
    refreshed = await client.post(REFRESH, json={"refresh_token": session["refresh_token"]})
    assert_problem(refreshed, 401, "invalid-refresh-token")
    old = await client.post(LOGIN, data={"username": user.email, "password": user.password})
    assert_problem(old, 401, "invalid-credentials")
    new = await client.post(LOGIN, data={"username": user.email, "password": NEW_PASSWORD})
    assert new.status_code == 200


async def test_a_reset_token_works_once(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings, mail: MailSink
) -> None:
    user = await make_user()
    token = await emailed_token(client, settings, mail, user)
    assert (await confirm(client, token, NEW_PASSWORD)).status_code == 204
    again = await confirm(client, token, "yet-another-passphrase")
    assert_problem(again, 400, "invalid-reset-token")
    login = await client.post(LOGIN, data={"username": user.email, "password": NEW_PASSWORD})
    assert login.status_code == 200


async def test_an_expired_reset_token_is_refused(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    settings: Settings,
    mail: MailSink,
    app: FastAPI,
) -> None:
    user = await make_user()
    token = await emailed_token(client, settings, mail, user)
    async with operator_database(app.state.runtime).session() as session:
        await session.execute(
            text("UPDATE users.password_reset_tokens SET expires_at = now() - interval '1 s'")
        )
    assert_problem(await confirm(client, token, NEW_PASSWORD), 400, "invalid-reset-token")
    login = await client.post(LOGIN, data={"username": user.email, "password": user.password})
    assert login.status_code == 200


async def test_using_one_reset_token_voids_the_others(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings, mail: MailSink
) -> None:
    user = await make_user()
    first = await emailed_token(client, settings, mail, user)
    mail.received.clear()
    second = await emailed_token(client, settings, mail, user)
    assert (await confirm(client, second, NEW_PASSWORD)).status_code == 204
    assert_problem(await confirm(client, first, "yet-another-passphrase"), 400)


async def test_a_weak_new_password_is_refused_and_the_token_kept(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings, mail: MailSink
) -> None:
    user = await make_user()
    token = await emailed_token(client, settings, mail, user)
    assert_problem(await confirm(client, token, "password1234"), 422, "password-too-common")
    assert (await confirm(client, token, NEW_PASSWORD)).status_code == 204


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (RESET, {"email": "not-an-email"}, "body.email"),
        (RESET, {"email": "a@example.com", "admin": True}, "body.admin"),
        (CONFIRM, {"token": "", "new_password": NEW_PASSWORD}, "body.token"),
        (CONFIRM, {"token": "t", "new_password": "short"}, "body.new_password"),
        (CONFIRM, {"token": "t", "new_password": NEW_PASSWORD, "user_id": 1}, "body.user_id"),
    ],
)
async def test_bad_reset_bodies_are_422(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], field: str
) -> None:
    response = await client.post(url, json=body)
    assert field in error_fields(assert_problem(response, 422, "validation-error"))


async def test_a_made_up_token_is_refused(client: httpx.AsyncClient) -> None:
    assert_problem(await confirm(client, "made-up-token", NEW_PASSWORD), 400, "invalid-reset-token")
