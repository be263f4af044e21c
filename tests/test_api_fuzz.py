"""Schema-driven fuzzing of the running API with schemathesis: requests generated from the
OpenAPI document, valid and invalid, for every operation, as an admin. No answer may be a server
error, every answer must be one the document declares (status, content type, body, headers),
invalid input must be refused, a 405 must list the allowed methods, and an operation that
declares authentication must refuse a request without it.

Runs `python -m app.cli serve`, as deployed, on a database of its own; the first runs of this
test found the 405 Allow header naming one method of several, 422s documented as JSON of
another shape, undeclared 400s and 429s, and Unix times accepted as ISO date-times."""

from __future__ import annotations

import sys
from pathlib import Path
from uuid import uuid4

import pytest

from app.core.config import Settings
from app.core.security.rbac import Role
from tests.conftest import Servers
from tests.faults.conftest import (
    emptied_runtime,
    run_tool,
    serving_api_to_a_tool,
    settings_on_own_database,
)

FUZZ_TIMEOUT_S = 600
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
        "allow_header_conformance",
        "ignored_auth",
    ]
)
# Operations that would end the session the run goes on with (logout, password change, erasure,
# the admin disabled or demoted) are tested on their own, with a session to spare.
ENDS_THE_SESSION = r"logout|password|erase|disable|roles"


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    return await settings_on_own_database(servers, "keystone_fuzz", redis_db=12)


async def test_generated_requests_get_only_documented_answers(
    settings: Settings, tmp_path: Path
) -> None:
    async with emptied_runtime(settings) as runtime:
        admin = await (
            runtime.module("users")
            .container.accounts()
            .register(
                "fuzz-admin@example.com",
                "a-long-fuzzing-passphrase",
                "Fuzz Admin",
                frozenset({Role.ADMIN}),
                email_verified=True,
            )
        )
        token = (
            runtime.module("users")
            .container.issuer()
            .issue_access_token(admin.id, frozenset({Role.ADMIN}), uuid4())
        )
    with serving_api_to_a_tool(settings, tmp_path / "api.log") as base:
        printed = await run_tool(
            [
                *(sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json"),
                *("--checks", CHECKS, "--phases", "coverage,fuzzing"),
                *("--max-examples", "15", "--seed", "20261125", "--no-color"),
                *("--exclude-path-regex", ENDS_THE_SESSION),
                *("--header", f"Authorization: Bearer {token}"),
            ],
            cwd=tmp_path,
            timeout_s=FUZZ_TIMEOUT_S,
        )
    assert "Tested: " in printed  # it did reach the operations
