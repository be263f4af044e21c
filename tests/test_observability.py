"""Sentry is initialised only when SENTRY_DSN is set, with the environment and the release."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sentry_sdk

from app.core.config import Settings
from app.core.observability import init_sentry
from app.core.security.ed25519 import new_signing_key, private_pem


@pytest.fixture
def sentry_reset() -> Iterator[None]:
    yield
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # back to a disabled client


def test_no_dsn_no_sentry() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert init_sentry(settings) is False
    assert not sentry_sdk.get_client().is_active()


@pytest.mark.usefixtures("sentry_reset")
def test_dsn_initialises_sentry_with_environment_and_release() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="staging",
        jwt_private_key=private_pem(new_signing_key()),
        database_url="postgresql://u@db/keystone",
        redis_url="redis://cache:6379/0",
        trusted_hosts=["api.example.com"],
        release="1.2.3",
        sentry_dsn="https://public@127.0.0.1:9/1",
        sentry_traces_sample_rate=0.25,
    )
    assert init_sentry(settings) is True
    options = sentry_sdk.get_client().options
    assert options["environment"] == "staging"
    assert options["release"] == "1.2.3"
    assert options["traces_sample_rate"] == 0.25
    assert options["data_collection"]["user_info"] is False
    assert options["data_collection"]["http_bodies"] == []
