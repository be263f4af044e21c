"""The password policy and the argon2id hashes behind it, through the HTTP API."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text

from app.modules.users.password_policy import common_passwords
from tests.helpers import assert_problem

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


async def register(
    client: httpx.AsyncClient, password: str, email: str = "grace@example.com"
) -> httpx.Response:
    body = {"email": email, "password": password, "full_name": "Grace Hopper"}
    return await client.post(REGISTER, json=body)


async def count_users(app: FastAPI) -> int:
    async with app.state.runtime.core.database().session() as session:
        count: int = await session.scalar(text("SELECT count(*) FROM users.users"))
    return count


def test_the_bundled_list_is_a_real_list_of_common_passwords() -> None:
    passwords = common_passwords()
    assert len(passwords) > 15_000
    assert {"123456", "password", "qwerty123456", "1q2w3e4r5t6y"} <= passwords


@pytest.mark.parametrize("password", ["qwerty123456", "1Q2W3E4R5T6Y", "password1234"])
async def test_a_common_password_is_refused_naming_the_rule(
    client: httpx.AsyncClient, app: FastAPI, password: str
) -> None:
    body = assert_problem(await register(client, password), 422, "password-too-common")
    assert "common" in body["detail"]
    assert await count_users(app) == 0


@pytest.mark.parametrize("password", ["grace.hopper-1906", "xx-GRACE.HOPPER-xx"])
async def test_a_password_containing_the_email_local_part_is_refused(
    client: httpx.AsyncClient, app: FastAPI, password: str
) -> None:
    response = await register(client, password, email="grace.hopper@example.com")
    body = assert_problem(response, 422, "password-contains-email")
    assert "local part" in body["detail"]
    assert await count_users(app) == 0


async def test_a_very_short_local_part_does_not_forbid_passphrases(
    client: httpx.AsyncClient,
) -> None:
    response = await register(client, "bold-ox-walks-far", email="ox@example.com")
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("password", ["x" * 11 + "y", "é" * 128])
async def test_length_bounds_are_inclusive(client: httpx.AsyncClient, password: str) -> None:
    assert (await register(client, password)).status_code == 201


async def test_the_policy_also_guards_accounts_made_outside_http(app: FastAPI) -> None:
    from app.modules.users.exceptions import PasswordTooCommonError

    accounts = app.state.runtime.module("users").container.accounts()
    with pytest.raises(PasswordTooCommonError):
        await accounts.register("ops@example.com", "password1234", "Ops")
    assert await count_users(app) == 0


async def test_an_old_parameter_hash_is_upgraded_on_login(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    assert (await register(client, "a-sturdy-passphrase")).status_code == 201
    weak = PasswordHash((Argon2Hasher(memory_cost=8_192, time_cost=1, parallelism=1),))
    old_hash = weak.hash("a-sturdy-passphrase")
    async with app.state.runtime.core.database().session() as session:
        await session.execute(text("UPDATE users.users SET password_hash = :h"), {"h": old_hash})

    response = await client.post(
        LOGIN, data={"username": "grace@example.com", "password": "a-sturdy-passphrase"}
    )
    assert response.status_code == 200, response.text

    async with app.state.runtime.core.database().session() as session:
        stored = await session.scalar(text("SELECT password_hash FROM users.users"))
    assert stored != old_hash
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    again = await client.post(
        LOGIN, data={"username": "grace@example.com", "password": "a-sturdy-passphrase"}
    )
    assert again.status_code == 200


async def test_a_wrong_password_does_not_touch_an_old_hash(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    assert (await register(client, "a-sturdy-passphrase")).status_code == 201
    old_hash = PasswordHash((Argon2Hasher(memory_cost=8_192, time_cost=1),)).hash("x" * 12)
    async with app.state.runtime.core.database().session() as session:
        await session.execute(text("UPDATE users.users SET password_hash = :h"), {"h": old_hash})
    response = await client.post(
        LOGIN, data={"username": "grace@example.com", "password": "y" * 12}
    )
    assert_problem(response, 401, "invalid-credentials")
    async with app.state.runtime.core.database().session() as session:
        assert await session.scalar(text("SELECT password_hash FROM users.users")) == old_hash
