"""Keystone on two topologies, for the same scenarios to run unchanged on both (as ServiceWeaver's
weavertest runs one test body on several deployments):

- `monolith`: one `python -m app.cli serve` process hosting every module and one worker, events
  delivered in process;
- `split`: one API process and one worker per module (tests/topology.py), events over Redis
  Streams, the nginx gateway in front; and every event delivered twice (`EventEcho`), so that
  what a scenario sees once proves the inboxes idempotent.

A scenario speaks HTTP to `topology.url` and reads the emails the mail sink received. The
topology makes its staff and admins (through the users module, as `create-admin` would; its
customers register and verify over HTTP) and tells it when every event written so far has been
handled (`events_settled`): what it reads inside (outboxes, consumer groups) decides when a
scenario looks, never what it asserts.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.bootstrap import build_runtime, truncate_all
from app.core.config import ALL_MODULES, Settings
from app.core.security.rbac import Role
from app.runtime import Runtime
from devtools.servers import free_port
from tests.conftest import Servers, eventually
from tests.databases import operator_database
from tests.faults.conftest import settings_on_own_database
from tests.mail import MailSink, ReceivedMail
from tests.scenarios.echo import EventEcho
from tests.tools import require_tool
from tests.topology import (
    PASSWORD,
    Person,
    Service,
    account,
    gateway_in_front,
    login,
    monolith_environment,
    running,
    split_environments,
)

TOPOLOGIES = ["monolith", "split"]
_people = itertools.count(1)


@dataclass
class Topology:
    name: str
    url: str  # the public base URL: the API itself, or the gateway
    runtime: Runtime  # the test's own view of the database, to make staff and admins
    mail: MailSink
    echo: EventEcho | None  # split: every event appended to its stream a second time

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=20)

    async def account(self, role: Role) -> Person:
        """A staff member or an admin (or a customer whose email is vouched for), logged in."""
        email = f"{role.value}-{next(_people)}@example.com"
        return await account(self.runtime, self.url, email, role)

    async def customer(self) -> Person:
        """A customer who registered, followed the emailed link and logged in."""
        email = f"customer-{next(_people)}@example.com"
        async with self.client() as client:
            body = {"email": email, "password": PASSWORD, "full_name": "Cleo Customer"}
            registered = await client.post("/api/v1/auth/register", json=body)
            assert registered.status_code == 201, registered.text
            token = await self.verification_token(email)
            verified = await client.post("/api/v1/auth/verify-email", json={"token": token})
            assert verified.status_code == 204, verified.text
        return await login(self.url, email)

    async def verification_token(self, email: str) -> str:
        (mail,) = await self.mails_to(email, count=1)
        found = re.search(r"token=([A-Za-z0-9_\-]+)", mail.body)
        assert found, mail.body
        return found.group(1)

    async def mails_to(self, email: str, count: int) -> list[ReceivedMail]:
        """Once `count` emails reached `email`: all of them."""

        async def arrived() -> bool:
            return len(self.received_by(email)) >= count

        await eventually(arrived, timeout_s=30, interval_s=0.1)
        return self.received_by(email)

    def received_by(self, email: str) -> list[ReceivedMail]:
        return [mail for mail in self.mail.received if email in mail.recipients]

    async def events_settled(self) -> None:
        """Every event written so far has been handled by every subscriber: no outbox row is
        left to relay and, in split mode, every stream entry (copies included) was read and
        acknowledged by every consumer group. Effects of events are final from then on."""

        async def settled() -> bool:
            if self.echo is not None and not await self.echo.settled():
                return False
            if not await self._outboxes_relayed():
                return False
            return self.echo is None or await self.echo.settled()

        await eventually(settled, timeout_s=60, interval_s=0.1)

    async def _outboxes_relayed(self) -> bool:
        async with operator_database(self.runtime).session() as session:
            for module in ALL_MODULES:
                left = await session.scalar(
                    text(f"SELECT count(*) FROM {module}.outbox WHERE dispatched_at IS NULL")  # noqa: S608
                )
                if left:
                    return False
        return True


@pytest.fixture(scope="module")
async def scenario_settings(servers: Servers) -> Settings:
    return await settings_on_own_database(servers, "keystone_scenarios", redis_db=11)


def _mail_to(sink: MailSink) -> dict[str, str]:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port), "SMTP_SECURITY": "none"}


@pytest.fixture(scope="module", params=TOPOLOGIES, ids=TOPOLOGIES)
async def topology(
    request: pytest.FixtureRequest,
    scenario_settings: Settings,
    smtp_sink: MailSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Topology]:
    name: str = request.param
    nginx = require_tool("nginx", "nginx") if name == "split" else ""
    runtime = build_runtime(scenario_settings)
    await truncate_all(runtime)
    await runtime.core.redis().flushdb()
    logs = tmp_path_factory.mktemp(f"scenarios-{name}")
    try:
        if name == "monolith":
            with _monolith(scenario_settings, smtp_sink, logs) as url:
                yield Topology(name, url, runtime, smtp_sink, echo=None)
            return
        # Before the services start: the echo's group reads each stream from its first entry.
        echo = EventEcho(scenario_settings.require_redis_url())
        await echo.start()
        try:
            with _split(scenario_settings, smtp_sink, logs, nginx) as url:
                yield Topology(name, url, runtime, smtp_sink, echo)
        finally:
            await echo.stop()
    finally:
        await runtime.stop()


@pytest.fixture(autouse=True)
async def _every_event_twice_in_split(topology: Topology) -> AsyncIterator[None]:
    """In split mode, each scenario's events were copied, and the copies handled, by its end."""
    before = topology.echo.copies if topology.echo else 0
    yield
    if topology.echo is not None:
        await topology.events_settled()
        assert topology.echo.copies > before, "no event was delivered twice"


@contextmanager
def _monolith(settings: Settings, sink: MailSink, logs: Path) -> Iterator[str]:
    env = monolith_environment(settings, _mail_to(sink))
    api = Service("all", free_port(), env, logs / "api.log")
    with running([api, Service("all", None, env, logs / "worker.log")]):
        yield api.url


@contextmanager
def _split(settings: Settings, sink: MailSink, logs: Path, nginx: str) -> Iterator[str]:
    ports = {module: free_port() for module in ALL_MODULES}
    envs = split_environments(settings, ports, _mail_to(sink))
    apis = {m: Service(m, ports[m], envs[m], logs / f"{m}.log") for m in ALL_MODULES}
    workers = [Service(m, None, envs[m], logs / f"{m}-worker.log") for m in ALL_MODULES]
    gateway_dir = logs / "gateway"
    gateway_dir.mkdir()
    with running([*apis.values(), *workers]), gateway_in_front(nginx, apis, gateway_dir) as gateway:
        yield gateway.url
