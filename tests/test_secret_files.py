"""Settings from files in SECRETS_DIR, as Kubernetes and Docker mount secrets: read like
environment variables, the environment winning; in staging and prod a setting given both ways
with different values is refused, naming the setting and never its values. The signing key
arrives as the secret manager holds it: a PEM file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.security.ed25519 import load_private_key, new_signing_key, private_pem, public_text
from app.core.security.keys import signing_keys

SIGNING_KEY = private_pem(new_signing_key())
PROD = {
    "APP_ENV": "prod",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "TRUSTED_HOSTS": "api.keystone.example",
    "PAYMENT_PROVIDER": "http",
    "PAYMENT_API_URL": "https://payments.example/v1",
}


def _public(pem: str) -> str:
    return public_text(load_private_key(pem).public_key())


@pytest.fixture
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    # As a Kubernetes Secret volume writes them: one file per key, the PEM with its newline.
    (folder / "jwt_private_key").write_text(SIGNING_KEY)
    (folder / "jwt_key_id").write_text("2026-11\n")
    (folder / "DATABASE_URL").write_text("postgresql://keystone@db.internal/keystone\n")
    (folder / "orders_database_url").write_text("postgresql://orders:pw@db.internal/keystone\n")
    monkeypatch.setenv("SECRETS_DIR", str(folder))
    for name in ("JWT_PRIVATE_KEY", "JWT_KEY_ID", "DATABASE_URL", "ORDERS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in PROD.items():
        monkeypatch.setenv(name, value)
    return folder


def test_prod_settings_come_from_files(secrets_dir: Path) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "postgresql://keystone@db.internal/keystone"
    assert settings.module_database_url("orders") == "postgresql://orders:pw@db.internal/keystone"
    assert settings.jwt_key_id == "2026-11"
    published = signing_keys(settings).jwks()["keys"]
    assert [(key["kid"], key["x"]) for key in published] == [("2026-11", _public(SIGNING_KEY))]


def test_the_same_value_both_ways_is_accepted(
    secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_PRIVATE_KEY", SIGNING_KEY)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_private_key is not None
    assert settings.jwt_private_key.get_secret_value() == SIGNING_KEY


def test_prod_refuses_a_secret_given_both_ways_differently(
    secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = private_pem(new_signing_key())
    monkeypatch.setenv("JWT_PRIVATE_KEY", stale)
    with pytest.raises(ValueError, match="JWT_PRIVATE_KEY is set both") as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "PRIVATE KEY-----" not in str(refused.value)


def test_a_file_that_is_not_a_signing_key_is_refused(secrets_dir: Path) -> None:
    (secrets_dir / "jwt_private_key").write_text("not a pem\n")
    with pytest.raises(ValueError, match="JWT_PRIVATE_KEY"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_dev_lets_the_environment_win(secrets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "dev")
    override = private_pem(new_signing_key())
    monkeypatch.setenv("JWT_PRIVATE_KEY", override)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_private_key is not None
    assert settings.jwt_private_key.get_secret_value() == override


def test_a_missing_secrets_dir_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "not-mounted"))
    with pytest.raises(ValueError, match=r"SECRETS_DIR=.*not-mounted is not a directory"):
        Settings(_env_file=None)  # type: ignore[call-arg]
