"""Retention: the hourly cron removes expired tokens and audit rows past their retention."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.core.jobs import CronJob, queue_name
from app.worker.functions import module_worker_settings
from tests.conftest import UserFactory
from tests.databases import operator_database


def retention_cron(app: FastAPI) -> CronJob:
    (cron,) = [
        job
        for job in app.state.runtime.module("users").cron_jobs
        if job.name == "users.apply_retention"
    ]
    return cron


async def count(app: FastAPI, table: str) -> int:
    async with operator_database(app.state.runtime).session() as session:
        value: int = await session.scalar(text(f"SELECT count(*) FROM users.{table}"))  # noqa: S608
    return value


async def test_the_worker_schedules_the_retention_cron(app: FastAPI) -> None:
    runtime = app.state.runtime
    settings = module_worker_settings(runtime.settings, runtime.module("users"))
    assert "users.apply_retention" in {cron.name for cron in settings["cron_jobs"]}
    assert settings["queue_name"] == queue_name("users")


async def test_retention_removes_only_what_is_past_its_time(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()  # one live refresh token, one audit row
    await client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": user.password}
    )
    async with operator_database(app.state.runtime).session() as session:
        await session.execute(
            text(
                "INSERT INTO users.audit_log (occurred_at, action, outcome) VALUES "
                "(now() - interval '366 days', 'auth.login', 'success'), "
                "(now() - interval '364 days', 'auth.login', 'success')"
            )
        )
        await session.execute(
            text(
                "UPDATE users.refresh_tokens SET expires_at = now() - interval '1 minute' "
                "WHERE id = (SELECT id FROM users.refresh_tokens ORDER BY created_at LIMIT 1)"
            )
        )
        await session.execute(
            text(
                "INSERT INTO users.password_reset_tokens (id, token_digest, user_id, expires_at) "
                "VALUES (gen_random_uuid(), 'old', :u, now() - interval '1 minute'), "
                "(gen_random_uuid(), 'live', :u, now() + interval '10 minutes')"
            ),
            {"u": user.id},
        )
    audit_before = await count(app, "audit_log")

    removed = await retention_cron(app).run()

    assert removed == {
        "refresh_tokens": 1,
        "password_reset_tokens": 1,
        "email_verification_tokens": 0,
        "audit_rows": 1,
    }
    assert await count(app, "refresh_tokens") == 1
    assert await count(app, "password_reset_tokens") == 1
    assert await count(app, "audit_log") == audit_before - 1
    assert await retention_cron(app).run() == {
        "refresh_tokens": 0,
        "password_reset_tokens": 0,
        "email_verification_tokens": 0,
        "audit_rows": 0,
    }
