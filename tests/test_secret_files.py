"""Settings from files in SECRETS_DIR, as Kubernetes and Docker mount secrets: read like
environment variables, the environment winning; in staging and prod a setting given both ways
with different values is refused, naming the setting and never its values."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings

SIGNING_KEY = "a-signing-key-from-the-secret-manager-0123456789"
PROD = {
    "APP_ENV": "prod",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "TRUSTED_HOSTS": "api.keystone.example",
    "PAYMENT_PROVIDER": "http",
    "PAYMENT_API_URL": "https://payments.example/v1",
}


@pytest.fixture
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    # As a Kubernetes Secret volume writes them: one file per key, the value with a newline.
    (folder / "jwt_secret").write_text(SIGNING_KEY + "\n")
    (folder / "DATABASE_URL").write_text("postgresql://keystone@db.internal/keystone\n")
    monkeypatch.setenv("SECRETS_DIR", str(folder))
    for name in ("JWT_SECRET", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in PROD.items():
        monkeypatch.setenv(name, value)
    return folder


def test_prod_settings_come_from_files(secrets_dir: Path) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_secret.get_secret_value() == SIGNING_KEY
    assert settings.database_url == "postgresql://keystone@db.internal/keystone"


def test_the_same_value_both_ways_is_accepted(
    secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", SIGNING_KEY)
    assert Settings(_env_file=None).jwt_secret.get_secret_value() == SIGNING_KEY  # type: ignore[call-arg]


def test_prod_refuses_a_secret_given_both_ways_differently(
    secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = "a-stale-signing-key-left-in-the-environment-000"
    monkeypatch.setenv("JWT_SECRET", stale)
    with pytest.raises(ValueError, match="JWT_SECRET is set both") as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert stale not in str(refused.value)
    assert SIGNING_KEY not in str(refused.value)


def test_dev_lets_the_environment_win(secrets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "dev")
    monkeypatch.setenv("JWT_SECRET", "a-developer-override-of-the-signing-key-00000")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_secret.get_secret_value().startswith("a-developer-override")


def test_a_missing_secrets_dir_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "not-mounted"))
    with pytest.raises(ValueError, match=r"SECRETS_DIR=.*not-mounted is not a directory"):
        Settings(_env_file=None)  # type: ignore[call-arg]
