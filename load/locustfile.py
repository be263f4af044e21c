"""Load scenarios: `uv run --group load locust -f load/locustfile.py --host http://127.0.0.1:8000`
(`make load` runs it headless for LOAD_TIME and writes CSV + HTML to load/reports/, ignored).

Three kinds of users, weighted like a shop's traffic (weights 8 : 3 : 1): most browse
anonymously (pages, sorts, filters, searches, product pages revalidated with ETags), some
customers log in and order, a few staff edit products and count stock. Think times are one to
five seconds for people and shorter for staff tools. The demo data of `make run` must be present.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from locust import HttpUser, between, task

API = "/api/v1"
SEARCHES = ("coffee", "grinder", "ethiopia", "dripper", "atlas", "decaf", "walnut desk")
SORTS = ("newest", "price_asc", "price_desc", "name")
CUSTOMER = {"username": "customer@keystone.local", "password": "cleo-pours-v60"}
STAFF = {"username": "staff@keystone.local", "password": "sam-grinds-beans"}
ADDRESS = {
    "name": "Load Tester",
    "line1": "1 Benchmark Way",
    "postal_code": "10115",
    "city": "Berlin",
    "country": "DE",
}


def _product_ids(user: HttpUser) -> list[str]:
    page: dict[str, Any] = user.client.get(f"{API}/catalog/products?limit=50").json()
    return [item["id"] for item in page["items"]]


def _walk(user: HttpUser, params: dict[str, str], name: str, pages: int) -> None:
    """Follow next_cursor for up to `pages` pages of one listing."""
    for _ in range(pages):
        page = user.client.get(f"{API}/catalog/products", params=params, name=name).json()
        if not page.get("next_cursor"):
            return
        params = {**params, "cursor": page["next_cursor"]}


class AnonymousBrowser(HttpUser):
    """Lists, sorts, filters and searches products, opens some, revalidates them by ETag."""

    weight = 8
    wait_time = between(1, 5)

    def on_start(self) -> None:
        self.etags: dict[str, str] = {}
        categories = self.client.get(f"{API}/catalog/categories").json()
        self.category_ids = [category["id"] for category in categories]

    @task(3)
    def browse_pages(self) -> None:
        params = {"limit": "20", "sort": random.choice(SORTS)}
        _walk(self, params, f"{API}/catalog/products?sort", random.randint(1, 3))

    @task(2)
    def filter_products(self) -> None:
        params = {"limit": "20", "in_stock": "true", "max_price": random.choice(["15", "50"])}
        if self.category_ids:
            params["category_id"] = random.choice(self.category_ids)
        _walk(self, params, f"{API}/catalog/products?filters", random.randint(1, 2))

    @task(2)
    def search(self) -> None:
        params = {"q": random.choice(SEARCHES), "limit": "20"}
        _walk(self, params, f"{API}/catalog/products?q", 1)

    @task(5)
    def open_product(self) -> None:
        ids = _product_ids(self)
        if not ids:
            return
        product_id = random.choice(ids)
        known = self.etags.get(product_id)
        response = self.client.get(
            f"{API}/catalog/products/{product_id}",
            headers={"If-None-Match": known} if known else {},
            name=f"{API}/catalog/products/{{id}}",
        )
        if "etag" in response.headers:
            self.etags[product_id] = response.headers["etag"]


class Customer(HttpUser):
    """Logs in once, looks at products, orders one or two, checks the order."""

    weight = 3
    wait_time = between(2, 5)

    def on_start(self) -> None:
        token = self.client.post(f"{API}/auth/login", data=CUSTOMER).json()["access_token"]
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.product_ids = _product_ids(self)

    @task(3)
    def me(self) -> None:
        self.client.get(f"{API}/users/me")

    @task(1)
    def place_order(self) -> None:
        if not self.product_ids:
            return
        chosen = random.sample(self.product_ids, k=min(2, len(self.product_ids)))
        body = {
            "items": [{"product_id": pid, "quantity": 1} for pid in chosen],
            "shipping_address": ADDRESS,
            "payment_method": "pm_card_visa",
        }
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        response = self.client.post(f"{API}/orders", json=body, headers=headers)
        if response.status_code == 201:
            self.client.get(f"{API}/orders/{response.json()['id']}", name=f"{API}/orders/{{id}}")

    @task(1)
    def my_orders(self) -> None:
        self.client.get(f"{API}/orders?limit=20", name=f"{API}/orders")


class Staff(HttpUser):
    """Adds products, edits prices and counts stock of the ones they added (the demo products
    stay as they are, so customers can keep ordering them)."""

    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        token = self.client.post(f"{API}/auth/login", data=STAFF).json()["access_token"]
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.added: list[str] = []

    @task(2)
    def edit_price(self) -> None:
        if self.added:
            self.client.patch(
                f"{API}/catalog/products/{random.choice(self.added)}",
                json={"price": f"{random.randint(100, 9999) / 100:.2f}"},
                name=f"{API}/catalog/products/{{id}} PATCH",
            )

    @task(1)
    def count_stock(self) -> None:
        if self.added:
            with self.client.put(
                f"{API}/catalog/products/{random.choice(self.added)}/stock",
                json={"on_hand": random.randint(0, 80)},
                name=f"{API}/catalog/products/{{id}}/stock",
                catch_response=True,
            ) as response:
                if response.status_code == 409:  # below what open orders hold: refused, rightly
                    response.success()

    @task(1)
    def add_product(self) -> None:
        body = {
            "sku": f"LOAD-{uuid.uuid4().hex[:12]}",
            "name": "Load-test product",
            "price": f"{random.randint(100, 9999) / 100:.2f}",
            "currency": "EUR",
            "stock": random.randint(0, 50),
        }
        response = self.client.post(f"{API}/catalog/products", json=body)
        if response.status_code == 201:
            self.added.append(response.json()["id"])
