"""Load scenarios: `uv run --group load locust -f load/locustfile.py --host http://127.0.0.1:8000`.

Three kinds of users, weighted like a shop's traffic: most browse anonymously, some customers
log in and order, a few staff add products. Think times are between one and five seconds for
people and shorter for staff tools. The demo data of `make run` must be present (seeded).
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from locust import HttpUser, between, task

API = "/api/v1"
CUSTOMER = {"username": "customer@keystone.local", "password": "keystone-cleo-demo"}
STAFF = {"username": "staff@keystone.local", "password": "keystone-sam-demo"}
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


class AnonymousBrowser(HttpUser):
    """Lists products page by page and opens some of them."""

    weight = 8
    wait_time = between(1, 5)

    @task(3)
    def browse_pages(self) -> None:
        cursor = None
        for _ in range(random.randint(1, 3)):
            url = f"{API}/catalog/products?limit=20" + (f"&cursor={cursor}" if cursor else "")
            page = self.client.get(url, name=f"{API}/catalog/products").json()
            cursor = page.get("next_cursor")
            if not cursor:
                break

    @task(5)
    def open_product(self) -> None:
        ids = _product_ids(self)
        if ids:
            self.client.get(
                f"{API}/catalog/products/{random.choice(ids)}",
                name=f"{API}/catalog/products/{{id}}",
            )


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
    """Adds products to the catalog."""

    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        token = self.client.post(f"{API}/auth/login", data=STAFF).json()["access_token"]
        self.client.headers["Authorization"] = f"Bearer {token}"

    @task
    def add_product(self) -> None:
        body = {
            "sku": f"LOAD-{uuid.uuid4().hex[:12]}",
            "name": "Load-test product",
            "price": f"{random.randint(100, 9999) / 100:.2f}",
            "currency": "EUR",
            "stock": random.randint(0, 50),
        }
        self.client.post(f"{API}/catalog/products", json=body)
