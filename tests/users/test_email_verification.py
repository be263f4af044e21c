"""Email verification through the API: a real arq worker mails through the real SMTP adapter to
a local SMTP server, and the tests read the token from what it received. Orders refuses an
unverified customer; the retention cron deletes accounts never verified."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.bootstrap import build_runtime
from app.core.config import Settings
from app.core.security.rbac import Role
from app.modules.catalog.schemas import ProductCreate
from app.modules.orders.service import Checkout
from app.modules.users.settings import UsersSettings
from app.worker.functions import module_worker_settings
from tests.conftest import TestUser, UserFactory, make_settings
from tests.databases import operator_database
from tests.helpers import ADDRESS, ME, assert_problem, create_product, error_fields, place
from tests.mail import MailSink, ReceivedMail
from tests.users.test_password_reset import queued_jobs, run_worker

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
VERIFY = "/api/v1/auth/verify-email"
RESEND = "/api/v1/users/me/verification-email"
PASSWORD = "velvet-otter-juggles-lanterns"


def tokens_in(received: list[ReceivedMail]) -> list[str]:
    found = [re.search(r"token=([A-Za-z0-9_\-]+)", mail.body) for mail in received]
    assert all(found), [mail.body for mail in received]
    return [match.group(1) for match in found if match]


async def register_and_log_in(client: httpx.AsyncClient, email: str) -> TestUser:
    body = {"email": email, "password": PASSWORD, "full_name": "Vera Fied"}
    registered = await client.post(REGISTER, json=body)
    assert registered.status_code == 201, registered.text
    assert registered.json()["email_verified"] is False
    login = await client.post(LOGIN, data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return TestUser(registered.json()["id"], email, PASSWORD, login.json()["access_token"])


async def verified_through_the_email(
    client: httpx.AsyncClient, settings: Settings, mail: MailSink, email: str
) -> TestUser:
    """The real flow: register, the worker mails the token, the token is presented."""
    user = await register_and_log_in(client, email)
    await run_worker(settings)
    [token] = tokens_in(mail.received)
    assert (await client.post(VERIFY, json={"token": token})).status_code == 204
    return user


async def rows(app: FastAPI, query: str, **params: Any) -> list[dict[str, Any]]:
    async with operator_database(app.state.runtime).session() as session:
        return [dict(row._mapping) for row in await session.execute(text(query), params)]


async def email_verified(client: httpx.AsyncClient, user: TestUser) -> bool:
    response = await client.get(ME, headers=user.headers)
    assert response.status_code == 200, response.text
    verified: bool = response.json()["email_verified"]
    return verified


async def test_registering_mails_a_single_use_token_that_verifies_the_address(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, mail: MailSink
) -> None:
    user = await register_and_log_in(client, "vera@example.com")
    assert "users.send_verification_email" in await queued_jobs(settings)
    assert not await email_verified(client, user)

    await run_worker(settings)

    [received] = mail.received
    assert received.message["To"] == "vera@example.com"
    assert "Confirm" in received.message["Subject"]
    [token] = tokens_in(mail.received)
    [stored] = await rows(app, "SELECT * FROM users.email_verification_tokens")
    assert stored["token_digest"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(stored)  # only its digest is kept
    assert (await client.post(VERIFY, json={"token": token})).status_code == 204
    assert await email_verified(client, user)
    again = await client.post(VERIFY, json={"token": token})
    assert_problem(again, 400, "invalid-verification-token")
    audit = await rows(
        app, "SELECT outcome FROM users.audit_log WHERE action = 'users.email_verified'"
    )
    assert sorted(row["outcome"] for row in audit) == ["failure", "success"]


async def test_an_expired_or_unknown_token_is_refused(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, mail: MailSink
) -> None:
    user = await register_and_log_in(client, "late@example.com")
    await run_worker(settings)
    [token] = tokens_in(mail.received)
    async with operator_database(app.state.runtime).session() as session:
        await session.execute(text("UPDATE users.email_verification_tokens SET expires_at = now()"))

    assert_problem(
        await client.post(VERIFY, json={"token": token}), 400, "invalid-verification-token"
    )
    made_up = await client.post(VERIFY, json={"token": "not-a-token-we-sent"})
    assert_problem(made_up, 400, "invalid-verification-token")
    assert error_fields(assert_problem(await client.post(VERIFY, json={"token": ""}), 422)) == {
        "body.token"
    }
    assert not await email_verified(client, user)


async def test_a_token_stops_working_once_the_account_is_erased(
    client: httpx.AsyncClient, settings: Settings, mail: MailSink
) -> None:
    user = await register_and_log_in(client, "gone@example.com")
    await run_worker(settings)
    [token] = tokens_in(mail.received)
    erased = await client.request("DELETE", ME, json={"password": PASSWORD}, headers=user.headers)
    assert erased.status_code == 204

    response = await client.post(VERIFY, json={"token": token})
    assert_problem(response, 400, "invalid-verification-token")


async def test_asking_again_is_rate_limited_and_any_emailed_token_verifies_once(
    client: httpx.AsyncClient,
    settings: Settings,
    mail: MailSink,
    make_user: UserFactory,
) -> None:
    user = await make_user(verified=False)
    assert settings.module(UsersSettings).rate_limit_verification_email == "3/hour"

    for _ in range(3):
        assert (await client.post(RESEND, headers=user.headers)).status_code == 202
    limited = await client.post(RESEND, headers=user.headers)
    assert_problem(limited, 429)
    assert int(limited.headers["retry-after"]) > 0
    other = await make_user(verified=False)  # the limit is per account
    assert (await client.post(RESEND, headers=other.headers)).status_code == 202

    await run_worker(settings)
    mine = [received for received in mail.received if received.message["To"] == user.email]
    first, second, *_ = tokens = tokens_in(mine)
    assert len(tokens) == 4  # the one registering sent, and the three asked for
    assert (await client.post(VERIFY, json={"token": second})).status_code == 204
    # Verifying used up every token of the account.
    assert_problem(
        await client.post(VERIFY, json={"token": first}), 400, "invalid-verification-token"
    )
    assert await email_verified(client, user)


async def test_a_verified_account_is_not_mailed_again(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings, mail: MailSink
) -> None:
    user = await make_user()
    assert await email_verified(client, user)
    assert_problem(await client.post(RESEND, headers=user.headers), 409, "email-already-verified")
    assert_problem(await client.post(RESEND), 401)
    await run_worker(settings)
    assert mail.received == []


async def test_an_unverified_customer_cannot_order_until_verified(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    mail: MailSink,
    make_user: UserFactory,
) -> None:
    staff = await make_user(Role.STAFF)
    lamp = await create_product(client, staff, stock=5)
    user = await register_and_log_in(client, "shopper@example.com")

    refused = assert_problem(await place(client, user, (lamp["id"], 1)), 403, "email-not-verified")
    assert RESEND in refused["detail"]
    assert await rows(app, "SELECT id FROM orders.orders") == []

    await run_worker(settings)
    [token] = tokens_in(mail.received)
    assert (await client.post(VERIFY, json={"token": token})).status_code == 204
    # The same access token: nothing in it needed to change.
    placed = await place(client, user, (lamp["id"], 1))
    assert placed.status_code == 201, placed.text


async def test_the_rule_can_be_turned_off(app: FastAPI, make_user: UserFactory) -> None:
    unverified = await make_user(verified=False)
    product = (
        await app.state.runtime.module("catalog")
        .container.products()
        .create_product(
            ProductCreate(sku="OFF-1", name="Mug", price=Decimal("4.00"), currency="EUR", stock=3)
        )
    )
    relaxed = make_settings(
        app.state.runtime.settings.require_database_url(),
        app.state.runtime.settings.require_redis_url(),
        require_verified_email_for_orders=False,
    )
    runtime = build_runtime(relaxed)
    try:
        placed = (
            await runtime.module("orders")
            .container.orders()
            .place_order(
                Checkout(
                    customer_id=UUID(unverified.id),
                    idempotency_key="relaxed-1",
                    items=[(product.id, 1)],
                    shipping_address=ADDRESS,
                    payment_method="pm_card_visa",
                )
            )
        )
    finally:
        await runtime.stop()
    assert placed.order.customer_id == UUID(unverified.id)


async def test_retention_deletes_old_unverified_customers_only_and_audits_each(
    client: httpx.AsyncClient, app: FastAPI, make_user: UserFactory
) -> None:
    stale = await make_user(verified=False)
    recent = await make_user(verified=False)
    verified_long_ago = await make_user()
    staff_unverified = await make_user(Role.STAFF, verified=False)
    async with operator_database(app.state.runtime).session() as session:
        await session.execute(
            text("UPDATE users.users SET created_at = now() - interval '31 days' WHERE id <> :r"),
            {"r": recent.id},
        )
    [cron] = [
        job
        for job in app.state.runtime.module("users").cron_jobs
        if job.name == "users.remove_unverified_accounts"
    ]
    schedule = module_worker_settings(app.state.runtime.settings, app.state.runtime.module("users"))
    assert cron.name in {job.name for job in schedule["cron_jobs"]}

    assert await cron.run() == 1

    left = {row["id"] for row in await rows(app, "SELECT id FROM users.users")}
    assert left == {UUID(recent.id), UUID(verified_long_ago.id), UUID(staff_unverified.id)}
    tokens = await rows(
        app, "SELECT id FROM users.refresh_tokens WHERE user_id = :u", u=UUID(stale.id)
    )
    assert tokens == []
    [audited] = await rows(
        app,
        "SELECT actor_id, target, outcome, detail FROM users.audit_log "
        "WHERE action = 'users.unverified_account_deleted'",
    )
    assert audited["target"] == f"user:{stale.id}"
    assert (audited["actor_id"], audited["outcome"]) == (None, "success")
    assert "registered_at" in audited["detail"]
    erased = await rows(
        app, "SELECT payload FROM users.outbox WHERE event_type = 'users.UserErased'"
    )
    assert [row["payload"]["user_id"] for row in erased] == [stale.id]
    # Its access token stops working at once.
    assert_problem(await client.get(ME, headers=stale.headers), 401)
    assert await cron.run() == 0


async def test_the_demo_accounts_are_verified(app: FastAPI) -> None:
    from app.seed import demo_accounts, seed

    await seed(app.state.runtime)
    verified = await rows(app, "SELECT email, email_verified_at FROM users.users")
    assert {row["email"] for row in verified} == {a.email for a in demo_accounts()}
    assert all(row["email_verified_at"] is not None for row in verified)


@pytest.mark.parametrize("verified", [True, False])
async def test_the_users_facade_tells_orders_whether_the_email_is_verified(
    app: FastAPI, make_user: UserFactory, verified: bool
) -> None:
    user = await make_user(verified=verified)
    facade = app.state.runtime.module("users").container.accounts()
    assert await facade.email_verified(UUID(user.id)) is verified
    assert await facade.email_verified(UUID(int=0)) is False
