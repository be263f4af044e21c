"""Emails to the customer about their order, sent by a real worker through the real SMTP
adapter to a local mail server: what they say and to whom, once each, through a mail server
that is down, comes back or refuses, and not at all to a customer who is gone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from arq.worker import Worker
from fastapi import FastAPI
from sqlalchemy import text

from app.core.jobs import JobRequest
from app.core.security.rbac import Role
from app.modules.orders.emails import OrderEmails
from app.modules.orders.service import SEND_ORDER_EMAIL_JOB
from tests.conftest import TestUser, UserFactory, eventually
from tests.databases import operator_database
from tests.helpers import ORDERS, create_product, finished, place, place_ok, read_order
from tests.mail import MailSink
from tests.order_emails.conftest import EMAIL_TRIES

pytestmark = pytest.mark.usefixtures("worker")


def order_emails(app: FastAPI) -> OrderEmails:
    emails: OrderEmails = app.state.runtime.module("orders").container.emails()
    return emails


async def outcomes(app: FastAPI, order_id: str) -> dict[str, str | None]:
    """The emails owed for the order: the status each is about -> how it was settled."""
    async with operator_database(app.state.runtime).session() as session:
        rows = await session.execute(
            text("SELECT status, outcome FROM orders.order_emails WHERE order_id = :id"),
            {"id": order_id},
        )
        return {status: outcome for status, outcome in rows}


async def settled_as(app: FastAPI, order_id: str, expected: dict[str, str | None]) -> None:
    async def reached() -> bool:
        return await outcomes(app, order_id) == expected

    await eventually(reached, timeout_s=20)


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == event
    ]


async def test_a_confirmed_order_emails_its_customer_once_with_lines_total_and_address(
    app: FastAPI,
    client: httpx.AsyncClient,
    staff: TestUser,
    customer: TestUser,
    mail: MailSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="keystone.orders")
    desk = await create_product(client, staff, name="Walnut desk", price="120.00")
    lamp = await create_product(client, staff, name="Brass lamp", price="19.99")
    response = await place(client, customer, (desk["id"], 1), (lamp["id"], 2))
    assert response.status_code == 201, response.text
    order_id = response.json()["id"]

    assert (await finished(client, customer, order_id))["status"] == "confirmed"
    await settled_as(app, order_id, {"confirmed": "sent"})

    (received,) = mail.received
    assert received.recipients == [customer.email]
    assert received.message["Subject"] == f"Order {order_id} is confirmed"
    assert received.body.splitlines() == [
        "Hello Test customer,",
        "",
        f"thank you for your order {order_id}: the payment went through and the order is"
        " confirmed.",
        "",
        f"  1 x Walnut desk ({desk['sku']}) at 120.00 EUR = 120.00 EUR",
        f"  2 x Brass lamp ({lamp['sku']}) at 19.99 EUR = 39.98 EUR",
        "",
        "Total: 159.98 EUR",
        "",
        "It ships to:",
        "Ada Lovelace",
        "12 St James's Square",
        "SW1Y 4JH London",
        "GB",
    ]
    # The log line ties the email to the order and to the checkout request that led to it.
    (sent,) = logged(caplog, "order email sent")
    assert (sent["order_id"], sent["email"]) == (order_id, "confirmed")
    assert sent["request_id"] == response.headers["x-request-id"]
    # A settled email is not the redrive's business.
    assert await order_emails(app).redrive(now=datetime.now(UTC) + timedelta(hours=1)) == 0


async def test_the_email_job_run_twice_sends_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    worker: Worker,
    staff: TestUser,
    customer: TestUser,
    mail: MailSink,
) -> None:
    lamp = await create_product(client, staff)
    order_id = (await place_ok(client, customer, (lamp["id"], 1)))["id"]
    await finished(client, customer, order_id)
    await settled_as(app, order_id, {"confirmed": "sent"})

    assert await order_emails(app).send(UUID(order_id), "confirmed") == "settled before: sent"
    # ... and through the queue, as a job delivered again would be.
    done = worker.jobs_complete
    await app.state.runtime.core.jobs().enqueue(
        JobRequest(SEND_ORDER_EMAIL_JOB, (order_id, "confirmed"), job_id=f"again:{order_id}")
    )

    async def ran_again() -> bool:
        return worker.jobs_complete > done

    await eventually(ran_again)
    assert len(mail.received) == 1
    assert await outcomes(app, order_id) == {"confirmed": "sent"}


async def test_a_failed_payment_is_emailed_without_a_shipping_address(
    app: FastAPI,
    client: httpx.AsyncClient,
    staff: TestUser,
    customer: TestUser,
    mail: MailSink,
) -> None:
    lamp = await create_product(client, staff, name="Brass lamp", price="19.99")
    placed = await place_ok(
        client, customer, (lamp["id"], 1), payment_method="pm_card_chargeDeclined"
    )
    order_id = placed["id"]

    assert (await finished(client, customer, order_id))["status"] == "payment_failed"
    await settled_as(app, order_id, {"payment_failed": "sent"})

    (received,) = mail.received
    assert received.recipients == [customer.email]
    assert received.message["Subject"] == f"Order {order_id}: payment failed"
    body = received.body
    assert f"the payment for your order {order_id} did not go through" in body
    assert f"  1 x Brass lamp ({lamp['sku']}) at 19.99 EUR = 19.99 EUR" in body
    assert "Total: 19.99 EUR" in body
    assert "It ships to" not in body


async def test_a_refunded_order_is_emailed_after_its_confirmation(
    app: FastAPI,
    client: httpx.AsyncClient,
    staff: TestUser,
    customer: TestUser,
    mail: MailSink,
) -> None:
    lamp = await create_product(client, staff, price="19.99")
    order_id = (await place_ok(client, customer, (lamp["id"], 3)))["id"]
    await finished(client, customer, order_id)
    await settled_as(app, order_id, {"confirmed": "sent"})

    cancelled = await client.post(f"{ORDERS}/{order_id}/cancel", headers=customer.headers)
    assert cancelled.status_code == 200, cancelled.text

    await settled_as(app, order_id, {"confirmed": "sent", "refunded": "sent"})
    assert (await read_order(client, customer, order_id))["status"] == "refunded"
    assert [m.message["Subject"] for m in mail.received] == [
        f"Order {order_id} is confirmed",
        f"Order {order_id} is refunded",
    ]
    refund = mail.received[1]
    assert refund.recipients == [customer.email]
    assert f"we have refunded your order {order_id}: 59.97 EUR goes back" in refund.body


async def test_a_mail_server_that_is_down_is_retried_until_it_is_back(
    app: FastAPI,
    client: httpx.AsyncClient,
    worker: Worker,
    staff: TestUser,
    customer: TestUser,
    mail: MailSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lamp = await create_product(client, staff)
    mail.stop()
    order_id = (await place_ok(client, customer, (lamp["id"], 1)))["id"]
    assert (await finished(client, customer, order_id))["status"] == "confirmed"

    async def retrying() -> bool:
        return any(line["args"][0] == order_id for line in logged(caplog, "job will retry"))

    await eventually(retrying)
    assert await outcomes(app, order_id) == {"confirmed": None}  # owed, not sent
    mail.start()  # back before the job's tries run out

    await settled_as(app, order_id, {"confirmed": "sent"})
    assert [m.recipients for m in mail.received] == [[customer.email]]
    assert worker.jobs_failed == 0


async def test_an_email_that_gave_up_is_sent_by_the_redrive_once_the_server_is_back(
    app: FastAPI,
    client: httpx.AsyncClient,
    staff: TestUser,
    customer: TestUser,
    mail: MailSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lamp = await create_product(client, staff)
    mail.stop()
    order_id = (await place_ok(client, customer, (lamp["id"], 1)))["id"]
    await finished(client, customer, order_id)

    gave_up_event = "order email not sent: mail server unavailable; the redrive will retry"

    async def gave_up() -> bool:
        return any(line["order_id"] == order_id for line in logged(caplog, gave_up_event))

    await eventually(gave_up, timeout_s=30)
    retries = [line for line in logged(caplog, "job will retry") if line["args"][0] == order_id]
    assert len(retries) == EMAIL_TRIES - 1
    assert await outcomes(app, order_id) == {"confirmed": None}
    emails = order_emails(app)
    assert await emails.redrive() == 0  # not yet: it was owed only a moment ago

    mail.start()
    assert await emails.redrive(now=datetime.now(UTC) + timedelta(hours=1)) == 1

    await settled_as(app, order_id, {"confirmed": "sent"})
    assert [m.recipients for m in mail.received] == [[customer.email]]


async def test_a_message_refused_for_good_is_logged_and_not_retried(
    app: FastAPI,
    client: httpx.AsyncClient,
    worker: Worker,
    staff: TestUser,
    customer: TestUser,
    mail: MailSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lamp = await create_product(client, staff)
    mail.reply = "554 5.7.1 Message rejected"
    order_id = (await place_ok(client, customer, (lamp["id"], 1)))["id"]
    await finished(client, customer, order_id)

    await settled_as(app, order_id, {"confirmed": "refused"})
    (refused,) = logged(caplog, "order email refused by the mail server")
    assert refused["order_id"] == order_id
    assert "554" in refused["reason"]
    assert worker.jobs_retried == 0
    assert mail.received == []
    assert await order_emails(app).redrive(now=datetime.now(UTC) + timedelta(hours=1)) == 0


@pytest.mark.parametrize("gone", ["erased", "disabled"])
async def test_a_customer_gone_before_the_email_gets_none_and_the_job_ends(
    gone: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    worker: Worker,
    make_user: UserFactory,
    staff: TestUser,
    customer: TestUser,
    mail: MailSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lamp = await create_product(client, staff)
    placed = await place_ok(client, customer, (lamp["id"], 1), payment_method="pm_card_slow")
    order_id = placed["id"]

    async def authorising() -> bool:
        async with operator_database(app.state.runtime).session() as session:
            requested: bool = await session.scalar(
                text("SELECT authorisation_requested_at IS NOT NULL FROM orders.orders"),
            )
        return requested

    # While the provider takes its time, the customer goes away.
    await eventually(authorising)
    if gone == "erased":
        response = await client.request(
            "DELETE",
            "/api/v1/users/me",
            json={"password": customer.password},
            headers=customer.headers,
        )
    else:
        admin = await make_user(Role.ADMIN)
        response = await client.post(f"/api/v1/users/{customer.id}/disable", headers=admin.headers)
    assert response.status_code in (200, 204), response.text

    assert (await finished(client, staff, order_id))["status"] == "confirmed"
    await settled_as(app, order_id, {"confirmed": "no_recipient"})
    assert mail.received == []
    (skipped,) = logged(caplog, "order email not sent: the customer is erased or disabled")
    assert skipped["order_id"] == order_id
    assert (worker.jobs_failed, worker.jobs_retried) == (0, 0)
    assert await order_emails(app).send(UUID(order_id), "confirmed") == (
        "settled before: no_recipient"
    )
