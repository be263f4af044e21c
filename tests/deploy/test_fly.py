"""fly.toml, as flyctl would read it: valid against the schema of Fly's configuration (through
check-jsonschema, which reads TOML), and true to the app: the release command migrates, the
process commands are commands of `python -m app.cli`, the checks ask a route the app serves, and
Fly waits longer than the app drains."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from app.core.config import Environment, Settings
from tests.cli_args import parse_app_cli

ROOT = Path(__file__).resolve().parents[2]
FLY_TOML = ROOT / "fly.toml"
SCHEMA = ROOT / "deploy" / "fly" / "fly.schema.json"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
# What the process needs after the drain grace: the lifespan shutdown and the interpreter's exit.
SHUTDOWN_MARGIN_S = 5


@pytest.fixture(scope="module")
def fly() -> dict[str, Any]:
    return tomllib.loads(FLY_TOML.read_text())


def test_fly_toml_is_valid_against_the_schema() -> None:
    checked = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), str(FLY_TOML)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_refuses_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "fly.toml"
    broken.write_text(FLY_TOML.read_text().replace("release_command =", "release_comand ="))
    checked = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 1
    assert "release_comand" in checked.stdout


def test_https_is_left_to_flys_proxy(fly: dict[str, Any]) -> None:
    """Fly's proxy redirects plain HTTP and reaches the app over plain HTTP from an address not
    in TRUSTED_PROXIES by default: an app redirecting too would loop every request."""
    assert fly["http_service"]["force_https"] is True
    nowhere = {"database_url": "postgresql://x@127.0.0.1:1/x", "redis_url": "redis://127.0.0.1:1"}
    env = fly["env"]
    # Read as the app reads them; prod's other requirements are secrets, not set here.
    settings = Settings(**nowhere, https_redirect=env.get("HTTPS_REDIRECT")).model_copy(
        update={"app_env": Environment(env["APP_ENV"])}
    )
    assert settings.behind_tls  # HSTS still sent
    assert not settings.redirects_to_https


def app_cli_command(line: str) -> list[str]:
    """The arguments after `python -m app.cli`, parsed by the CLI's own parser."""
    words = shlex.split(line)
    assert words[:3] == ["python", "-m", "app.cli"], line
    parse_app_cli(words[3:])  # raises (fails the test) on an unknown command or argument
    return words[3:]


def test_release_step_runs_the_migrations(fly: dict[str, Any]) -> None:
    assert app_cli_command(fly["deploy"]["release_command"]) == ["migrate"]
    assert fly["deploy"]["strategy"] in ("canary", "bluegreen")


def test_processes_are_the_api_and_the_worker(fly: dict[str, Any]) -> None:
    commands = {name: app_cli_command(line) for name, line in fly["processes"].items()}
    assert commands["web"][0] == "serve"
    assert commands["worker"] == ["worker"]
    port = commands["web"][commands["web"].index("--port") + 1]
    assert int(port) == fly["http_service"]["internal_port"]
    assert fly["http_service"]["processes"] == ["web"]


def test_checks_ask_the_readiness_route(fly: dict[str, Any]) -> None:
    from app.main import create_app

    # Building the app connects nowhere: URLs nothing listens on will do.
    nowhere = Settings(database_url="postgresql://x@127.0.0.1:1/x", redis_url="redis://127.0.0.1:1")
    routes = create_app(nowhere).openapi()["paths"]
    checks = fly["http_service"]["checks"]
    assert [check["path"] for check in checks] == ["/readyz"]
    assert "/readyz" in routes


def test_fly_waits_longer_than_the_app_drains(fly: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"STOPSIGNAL {fly['kill_signal']}" in dockerfile
    defaults = Settings()
    grace = max(defaults.api_shutdown_grace_s, defaults.worker_shutdown_grace_s)
    assert fly["kill_timeout"] >= grace + SHUTDOWN_MARGIN_S
    assert "API_SHUTDOWN_GRACE_S" not in fly.get("env", {})
