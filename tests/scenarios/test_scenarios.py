"""What a person sees of Keystone, on each topology (tests/scenarios/conftest.py): the same
scenario bodies against one process hosting every module, and against one service per module
behind the gateway with every event delivered twice. Each speaks HTTP to the public URL only,
and reads the emails it was sent; what it sees must not depend on the topology.

One file, so that pytest-xdist (`--dist loadfile`) runs every scenario of a topology in the
worker that started its processes."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx

from app.core.security.rbac import Role
from tests.conftest import eventually
from tests.helpers import ADDRESS, ME, ORDERS, PRODUCTS, assert_problem, order_body, product_body
from tests.scenarios.conftest import Topology
from tests.topology import PASSWORD, Person

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
VERIFY = "/api/v1/auth/verify-email"
EXPORT = "/api/v1/users/me/export"
AUDIT = "/api/v1/admin/audit-log"
USERS = "/api/v1/users"
DECLINED_CARD = "pm_card_chargeDeclined"  # the sandbox provider's declining test card


async def new_product(client: httpx.AsyncClient, staff: Person, **fields: Any) -> dict[str, Any]:
    response = await client.post(PRODUCTS, json=product_body(**fields), headers=staff.headers)
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product


async def place(
    client: httpx.AsyncClient,
    customer: Person,
    product: dict[str, Any],
    quantity: int,
    payment_method: str = "pm_card_visa",
    key: str | None = None,
) -> httpx.Response:
    body = order_body((product["id"], quantity), payment_method=payment_method)
    headers = {**customer.headers, "Idempotency-Key": key or str(uuid4())}
    return await client.post(ORDERS, json=body, headers=headers)


async def placed(
    client: httpx.AsyncClient, customer: Person, product: dict[str, Any], quantity: int, **how: Any
) -> dict[str, Any]:
    response = await place(client, customer, product, quantity, **how)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    assert order["status"] == "pending"
    return order


async def reaches(
    client: httpx.AsyncClient, person: Person, order_id: str, status: str
) -> dict[str, Any]:
    """The order once it is in `status` (the saga runs after the response)."""
    latest: dict[str, Any] = {}

    async def there() -> bool:
        response = await client.get(f"{ORDERS}/{order_id}", headers=person.headers)
        assert response.status_code == 200, response.text
        latest.update(response.json())
        return bool(latest["status"] == status)

    await eventually(there, timeout_s=60, interval_s=0.2)
    return latest


def history(order: dict[str, Any]) -> list[tuple[str, str]]:
    return [(change["status"], change["cause"]) for change in order["history"]]


async def stock_of(client: httpx.AsyncClient, product: dict[str, Any]) -> int:
    response = await client.get(f"{PRODUCTS}/{product['id']}")
    assert response.status_code == 200, response.text
    stock: int = response.json()["stock"]
    return stock


async def stock_becomes(client: httpx.AsyncClient, product: dict[str, Any], stock: int) -> None:
    """Reads may be served from the cache until the catalog's own event invalidates it, and
    from another instance's in-process copy for up to CACHE_LOCAL_TTL_S after that (the
    documented staleness bound: the eviction runs in whichever process relayed the event)."""

    async def there() -> bool:
        return await stock_of(client, product) == stock

    await eventually(there, timeout_s=30, interval_s=0.2)


def order_news(topology: Topology, person: Person) -> list[str]:
    """The subjects of the emails about orders the person received, oldest first."""
    received = [mail.message["Subject"] for mail in topology.received_by(person.email)]
    return [subject for subject in received if subject.startswith("Order ")]


async def order_news_once(topology: Topology, person: Person, count: int) -> list[str]:
    """`order_news` once `count` of them arrived (the worker mails after the status changed)."""

    async def arrived() -> bool:
        return len(order_news(topology, person)) >= count

    await eventually(arrived, timeout_s=30, interval_s=0.1)
    return order_news(topology, person)


async def user_id(client: httpx.AsyncClient, person: Person) -> str:
    response = await client.get(ME, headers=person.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def test_a_person_registers_logs_in_and_sees_their_account(topology: Topology) -> None:
    email = f"ada-{uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "full_name": "Ada Lovelace"}
    async with topology.client() as client:
        registered = await client.post(REGISTER, json=body)
        assert registered.status_code == 201, registered.text
        assert registered.json()["email"] == email
        assert (registered.json()["roles"], registered.json()["email_verified"]) == (
            ["customer"],
            False,
        )
        assert_problem(await client.post(REGISTER, json=body), 409, "email-taken")

        wrong = await client.post(LOGIN, data={"username": email, "password": "not-the-one"})
        assert_problem(wrong, 401, "invalid-credentials")
        login = await client.post(LOGIN, data={"username": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        assert login.json()["token_type"] == "bearer"
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        me = await client.get(ME, headers=headers)
        assert me.status_code == 200, me.text
        assert (me.json()["id"], me.json()["full_name"]) == (
            registered.json()["id"],
            "Ada Lovelace",
        )
        assert_problem(await client.get(ME), 401, "unauthorized")

        token = await topology.verification_token(email)
        assert (await client.post(VERIFY, json={"token": token})).status_code == 204
        assert (await client.get(ME, headers=headers)).json()["email_verified"] is True
        used = await client.post(VERIFY, json={"token": token})
        assert_problem(used, 400, "invalid-verification-token")
    assert len(topology.received_by(email)) == 1


async def test_staff_write_the_catalog_and_anyone_reads_it(topology: Topology) -> None:
    staff = await topology.account(Role.STAFF)
    customer = await topology.account(Role.CUSTOMER)
    async with topology.client() as client:
        refused = await client.post(PRODUCTS, json=product_body(), headers=customer.headers)
        assert_problem(refused, 403, "forbidden")
        assert_problem(await client.post(PRODUCTS, json=product_body()), 401, "unauthorized")
        lamp = await new_product(client, staff, name="Brass lamp", price="40.00", stock=3)

        read = await client.get(f"{PRODUCTS}/{lamp['id']}")
        assert read.status_code == 200, read.text
        assert (read.json()["name"], read.json()["price"], read.json()["stock"]) == (
            "Brass lamp",
            "40.00",
            3,
        )
        etag = read.headers["etag"]
        unchanged = await client.get(f"{PRODUCTS}/{lamp['id']}", headers={"If-None-Match": etag})
        assert (unchanged.status_code, unchanged.headers["etag"]) == (304, etag)
        listed = await client.get(PRODUCTS, params={"q": "Brass lamp"})
        assert [item["id"] for item in listed.json()["items"]] == [lamp["id"]]

        edit = {"name": "Copper lamp", "price": "45.00"}
        edited = await client.patch(f"{PRODUCTS}/{lamp['id']}", json=edit, headers=staff.headers)
        assert edited.status_code == 200, edited.text
        assert (edited.json()["name"], edited.json()["price"]) == ("Copper lamp", "45.00")

        async def renamed() -> bool:
            response = await client.get(f"{PRODUCTS}/{lamp['id']}", headers={"If-None-Match": etag})
            return response.status_code == 200 and response.json()["name"] == "Copper lamp"

        await eventually(renamed, timeout_s=30, interval_s=0.2)  # the old ETag no longer matches
        archived = await client.delete(f"{PRODUCTS}/{lamp['id']}", headers=staff.headers)
        assert archived.status_code == 204, archived.text

        async def gone() -> bool:
            return (await client.get(f"{PRODUCTS}/{lamp['id']}")).status_code == 404

        await eventually(gone, timeout_s=30, interval_s=0.2)
        assert_problem(await client.get(f"{PRODUCTS}/{lamp['id']}"), 404, "product-not-found")


async def test_a_checkout_ends_confirmed_with_its_stock_taken_once(topology: Topology) -> None:
    staff = await topology.account(Role.STAFF)
    customer = await topology.customer()
    async with topology.client() as client:
        desk = await new_product(client, staff, name="Oak desk", price="12.50", stock=5)
        key = str(uuid4())
        first = await placed(client, customer, desk, 2, key=key)
        assert (first["total"], first["currency"]) == ("25.00", "EUR")
        assert [(line["name"], line["quantity"]) for line in first["lines"]] == [("Oak desk", 2)]
        again = await place(client, customer, desk, 2, key=key)  # a client's retry
        assert (again.status_code, again.json()["id"]) == (201, first["id"])

        order = await reaches(client, customer, first["id"], "confirmed")
        assert history(order) == [
            ("pending", "placed"),
            ("stock_reserved", "stock reserved"),
            ("paid", "payment authorised"),
            ("confirmed", "payment captured"),
        ]
        assert (await order_news_once(topology, customer, 1)) == [
            f"Order {first['id']} is confirmed"
        ]
        await topology.events_settled()
        await stock_becomes(client, desk, 3)

        async def listed_confirmed() -> bool:
            response = await client.get(ORDERS, headers=customer.headers)
            assert response.status_code == 200, response.text
            return [(o["id"], o["status"]) for o in response.json()["items"]] == [
                (first["id"], "confirmed")
            ]

        await eventually(listed_confirmed, timeout_s=30, interval_s=0.2)
        assert order_news(topology, customer) == [f"Order {first['id']} is confirmed"]


async def test_a_declined_payment_fails_the_order_and_gives_the_stock_back(
    topology: Topology,
) -> None:
    staff = await topology.account(Role.STAFF)
    customer = await topology.customer()
    async with topology.client() as client:
        chair = await new_product(client, staff, name="Beech chair", stock=2)
        order = await placed(client, customer, chair, 2, payment_method=DECLINED_CARD)

        failed = await reaches(client, customer, order["id"], "payment_failed")
        assert history(failed) == [
            ("pending", "placed"),
            ("stock_reserved", "stock reserved"),
            ("payment_failed", "card_declined"),
        ]
        assert (await order_news_once(topology, customer, 1)) == [
            f"Order {order['id']}: payment failed"
        ]
        await topology.events_settled()
        await stock_becomes(client, chair, 2)
        ship = await client.post(f"{ORDERS}/{order['id']}/ship", headers=staff.headers)
        assert_problem(ship, 409, "illegal-transition")

        # Both units are on sale again: another customer buys them.
        other = await topology.customer()
        second = await placed(client, other, chair, 2)
        await reaches(client, other, second["id"], "confirmed")
        await topology.events_settled()
        await stock_becomes(client, chair, 0)
    assert order_news(topology, customer) == [f"Order {order['id']}: payment failed"]


async def test_cancelling_a_confirmed_order_refunds_it_once(topology: Topology) -> None:
    staff = await topology.account(Role.STAFF)
    customer = await topology.customer()
    async with topology.client() as client:
        kettle = await new_product(client, staff, name="Steel kettle", price="30.00", stock=4)
        order = await placed(client, customer, kettle, 1)
        await reaches(client, customer, order["id"], "confirmed")

        cancelled = await client.post(f"{ORDERS}/{order['id']}/cancel", headers=customer.headers)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        again = await client.post(f"{ORDERS}/{order['id']}/cancel", headers=customer.headers)
        assert_problem(again, 409, "illegal-transition")

        refunded = await reaches(client, customer, order["id"], "refunded")
        assert history(refunded)[-2:] == [
            ("cancelled", "cancelled by the customer"),
            ("refunded", "payment refunded"),
        ]
        assert (await order_news_once(topology, customer, 2)) == [
            f"Order {order['id']} is confirmed",
            f"Order {order['id']} is refunded",
        ]
        refund_mail = topology.received_by(customer.email)[-1]
        assert "30.00" in refund_mail.body
        await topology.events_settled()
        await stock_becomes(client, kettle, 4)
        final = await reaches(client, customer, order["id"], "refunded")
        assert [status for status, _ in history(final)].count("refunded") == 1
    assert len(order_news(topology, customer)) == 2


async def test_a_persons_export_has_their_orders_and_erasure_forgets_them(
    topology: Topology,
) -> None:
    staff = await topology.account(Role.STAFF)
    admin = await topology.account(Role.ADMIN)
    customer = await topology.customer()
    async with topology.client() as client:
        mug = await new_product(client, staff, name="Ceramic mug", price="9.50")
        order = await placed(client, customer, mug, 2)
        await reaches(client, customer, order["id"], "confirmed")

        export = await client.get(EXPORT, headers=customer.headers)
        assert export.status_code == 200, export.text
        modules = export.json()["modules"]
        assert modules["users"]["account"]["email"] == customer.email
        (exported,) = modules["orders"]["orders"]
        assert (exported["id"], exported["total"]) == (order["id"], "19.00")
        assert exported["shipping_address"]["name"] == ADDRESS["name"]

        erase = {"password": "not-my-password"}
        wrong = await client.request("DELETE", ME, json=erase, headers=customer.headers)
        assert_problem(wrong, 403, "wrong-password")
        erase = {"password": PASSWORD}
        erased = await client.request("DELETE", ME, json=erase, headers=customer.headers)
        assert erased.status_code == 204, erased.text

        assert_problem(await client.get(ME, headers=customer.headers), 401)
        assert_problem(await client.get(EXPORT, headers=customer.headers), 401)
        login = await client.post(LOGIN, data={"username": customer.email, "password": PASSWORD})
        assert_problem(login, 401, "invalid-credentials")
        found = await client.get(USERS, params={"email": customer.email}, headers=admin.headers)
        assert (found.status_code, found.json()["items"]) == (200, [])

        async def address_forgotten() -> bool:  # orders hears of the erasure by an event
            seen = await client.get(f"{ORDERS}/{order['id']}", headers=staff.headers)
            assert seen.status_code == 200, seen.text
            return seen.json()["shipping_address"] is None

        await eventually(address_forgotten, timeout_s=30, interval_s=0.2)
        kept = (await client.get(f"{ORDERS}/{order['id']}", headers=staff.headers)).json()
        assert (kept["status"], kept["total"]) == ("confirmed", "19.00")  # the books keep it


async def test_an_admin_sees_the_audit_trail_of_a_sale(topology: Topology) -> None:
    admin = await topology.account(Role.ADMIN)
    staff = await topology.account(Role.STAFF)
    customer = await topology.customer()
    async with topology.client() as client:
        typo = {"username": customer.email, "password": "typo-in-the-password"}
        assert_problem(await client.post(LOGIN, data=typo), 401, "invalid-credentials")
        lamp = await new_product(client, staff, name="Desk lamp")
        order = await placed(client, customer, lamp, 1)
        await reaches(client, customer, order["id"], "confirmed")
        shipped = await client.post(f"{ORDERS}/{order['id']}/ship", headers=staff.headers)
        assert shipped.status_code == 200, shipped.text
        assert shipped.json()["status"] == "shipped"
        ship_again = await client.post(f"{ORDERS}/{order['id']}/ship", headers=staff.headers)
        assert_problem(ship_again, 409, "illegal-transition")

        assert_problem(await client.get(AUDIT, headers=staff.headers), 403, "forbidden")
        response = await client.get(AUDIT, params={"limit": 100}, headers=admin.headers)
        assert response.status_code == 200, response.text
        entries = response.json()["items"]
        customer_id, staff_id = await user_id(client, customer), await user_id(client, staff)

        def seen(actor: str | None, action: str, target: str) -> list[tuple[str, str]]:
            return [
                (entry["outcome"], entry["ip"])
                for entry in reversed(entries)  # oldest first
                if (entry["actor_id"], entry["action"], entry["target"]) == (actor, action, target)
            ]

        customer_target = f"user:{customer_id}"
        assert seen(None, "auth.login", customer_target) == [("failure", "127.0.0.1")]
        assert seen(customer_id, "auth.login", customer_target) == [("success", "127.0.0.1")]
        assert seen(staff_id, "catalog.product_create", f"POST {PRODUCTS}") == [
            ("success", "127.0.0.1")
        ]
        assert seen(staff_id, "orders.ship", f"POST {ORDERS}/{order['id']}/ship") == [
            ("success", "127.0.0.1"),
            ("failure", "127.0.0.1"),
        ]
