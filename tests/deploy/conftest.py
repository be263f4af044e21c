"""The production image, built once for the whole tests/deploy package (~1 min; the stand-in
base ~80 s more the first time on a machine), and the suite's own Postgres and Redis for the
containers to use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import Servers
from tests.deploy.forward import tcp_to_unix_socket
from tests.deploy.images import Containers

IMAGE = "localhost/keystone:under-test"
BACKUP_IMAGE = "localhost/keystone-backup:under-test"


@pytest.fixture(scope="session")
def containers() -> Containers:
    return Containers.on_this_machine()


@pytest.fixture(scope="session")
def image(containers: Containers) -> str:
    """The image's id (tagged IMAGE too, for a person looking at the storage)."""
    return containers.build(containers.standin_base(), IMAGE)


@pytest.fixture(scope="session")
def backup_image(containers: Containers, image: str) -> str:
    """The Dockerfile's backup stage on top of the image just built (its runtime stage): only
    PostgreSQL's client is added, as `--target backup` adds it."""
    return containers.build_stage_on(image, "backup", BACKUP_IMAGE)


@pytest.fixture(scope="session")
async def image_database(servers: Servers) -> str:
    """An empty database of its own: the image's `migrate` builds its schemas."""
    return await servers.recreate_database("keystone_image")


@pytest.fixture(scope="session")
def container_database_url(image_database: str) -> Iterator[str]:
    """`image_database` as a container reaches it: over TCP on the loopback (the containers
    share the host's network), through a forwarder when the server listens on a socket only."""
    url = make_url(image_database)
    socket_dir = url.query.get("host")
    if not isinstance(socket_dir, str) or not socket_dir.startswith("/"):
        yield image_database
        return
    port = url.port or 5432
    with tcp_to_unix_socket(f"{socket_dir}/.s.PGSQL.{port}") as forwarded:
        tcp = url.difference_update_query(["host", "port"]).set(host="127.0.0.1", port=forwarded)
        yield tcp.render_as_string(hide_password=False)
