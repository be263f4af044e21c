"""The password policy and the argon2id hashes behind it, through the HTTP API."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text

from app.modules.users.exceptions import WeakPasswordError
from app.modules.users.password_policy import check_password, common_passwords
from tests.databases import operator_database
from tests.helpers import assert_problem

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


async def register(
    client: httpx.AsyncClient, password: str, email: str = "grace@example.com"
) -> httpx.Response:
    body = {"email": email, "password": password, "full_name": "Grace Hopper"}
    return await client.post(REGISTER, json=body)


async def count_users(app: FastAPI) -> int:
    async with operator_database(app.state.runtime).session() as session:
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


@pytest.mark.parametrize("password", ["Vq7#mKp2!zLw", ("velvet-otter-" * 10)[:120] + "Kq7#mZp2"])
async def test_length_bounds_are_inclusive(client: httpx.AsyncClient, password: str) -> None:
    assert len(password) in (12, 128)
    assert (await register(client, password)).status_code == 201, password


EMAIL, NAME = "grace.hopper@navy.example.com", "Grace Brewster Hopper"
WEAK_SHAPES = [
    # repeats
    ("aaaaaaaaaaaa", "password-repetitive"),
    ("abcabcabcabcabc", "password-repetitive"),
    ("1" * 128, "password-repetitive"),
    ("é" * 128, "password-repetitive"),
    ("x" * 11 + "y", "password-sequence"),
    # sequences, dates
    ("abcdefghijklmn", "password-sequence"),
    ("123456789012", "password-sequence"),
    ("zyxwvutsrqpo", "password-sequence"),
    ("19061992grace", "password-sequence"),
    # keyboard walks
    ("zxcvbnm,./asdf", "password-keyboard-pattern"),
    ("asdfghjkl;'zx", "password-keyboard-pattern"),
    ("1qaz2wsx3edc4rfv", "password-too-common"),
    ("qwertyuiopasdf", "password-too-common"),
    # the name, the email and the site, with little else
    ("gracehopper12", "password-contains-personal-info"),
    ("GraceHopper1906!", "password-contains-personal-info"),
    ("Gr4ceH0pper!!", "password-contains-personal-info"),
    ("reppohecarg99", "password-contains-personal-info"),
    ("brewster-navy-1", "password-contains-personal-info"),
    ("keystone2024!", "password-contains-personal-info"),
    ("Keystone-Shop-1", "password-contains-personal-info"),
    ("grace.hopper-1906", "password-contains-email"),
    # the common list, any case
    ("password1234", "password-too-common"),
    ("QWERTY123456", "password-too-common"),
    # short
    ("Vq7#mKp2!zL", "password-length"),
]
STRONG_PASSPHRASES = [
    "correct horse battery staple",
    "velvet-otter-juggles-lanterns",
    "my cat prefers jazz on tuesdays",
    "grace likes purple otters",  # a first name among other words is fine
    "Tr0ub4dor&3-meadow",
    "ada-roasts-coffee",  # the demo passwords, with their own accounts' context below
    "chosen-by-the-operator",
    ("velvet-otter-" * 10)[:120] + "Kq7#mZp2",
]


@pytest.mark.parametrize(("password", "rule"), WEAK_SHAPES)
def test_weak_shapes_are_refused_naming_the_rule(password: str, rule: str) -> None:
    with pytest.raises(WeakPasswordError) as refused:
        check_password(password, EMAIL, NAME)
    assert refused.value.code == rule, refused.value.detail


@pytest.mark.parametrize("password", STRONG_PASSPHRASES)
def test_strong_passphrases_pass(password: str) -> None:
    check_password(password, EMAIL, NAME)


@pytest.mark.parametrize(
    ("email", "name", "password"),
    [
        ("admin@keystone.local", "Ada Admin", "ada-roasts-coffee"),
        ("staff@keystone.local", "Sam Staff", "sam-grinds-beans"),
        ("customer@keystone.local", "Cleo Customer", "cleo-pours-v60"),
    ],
)
def test_the_demo_passwords_pass_for_their_accounts(email: str, name: str, password: str) -> None:
    from app.seed import demo_accounts

    assert password in {account.password for account in demo_accounts()}
    check_password(password, email, name)


def test_a_long_weak_head_is_judged_on_it_and_quickly() -> None:
    """Only the first 64 characters are scored: a weak start is refused, however long."""
    with pytest.raises(WeakPasswordError) as refused:
        check_password("12" * 32 + "velvet-otter-juggles-lanterns", EMAIL, NAME)
    assert refused.value.code == "password-repetitive"


async def test_zxcvbn_advice_reaches_the_client(client: httpx.AsyncClient, app: FastAPI) -> None:
    body = assert_problem(await register(client, "aaaaaaaaaaaa"), 422, "password-repetitive")
    assert "Repeats like" in body["detail"]
    personal = await register(client, "GraceHopper1906!", email="grace.hopper@example.com")
    body = assert_problem(personal, 422, "password-contains-personal-info")
    assert "name" in body["detail"]
    assert await count_users(app) == 0


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
    async with operator_database(app.state.runtime).session() as session:
        await session.execute(text("UPDATE users.users SET password_hash = :h"), {"h": old_hash})

    response = await client.post(
        LOGIN, data={"username": "grace@example.com", "password": "a-sturdy-passphrase"}
    )
    assert response.status_code == 200, response.text

    async with operator_database(app.state.runtime).session() as session:
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
    async with operator_database(app.state.runtime).session() as session:
        await session.execute(text("UPDATE users.users SET password_hash = :h"), {"h": old_hash})
    response = await client.post(
        LOGIN, data={"username": "grace@example.com", "password": "y" * 12}
    )
    assert_problem(response, 401, "invalid-credentials")
    async with operator_database(app.state.runtime).session() as session:
        assert await session.scalar(text("SELECT password_hash FROM users.users")) == old_hash
