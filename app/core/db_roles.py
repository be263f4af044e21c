"""Each module's own Postgres roles, so that the database itself keeps modules apart.

For a module whose schema is `orders`:

- `keystone_orders_owner` (NOLOGIN) owns the schema and everything in it. Migrations run as
  this role (`SET LOCAL ROLE` inside the migration's transaction, from the operator's login,
  DATABASE_URL), so a migration of orders cannot touch another module's schema.
- The module's login, named by `ORDERS_DATABASE_URL` (its user and password), may use the
  schema and read and write its tables and sequences, nothing else: no DDL, no other schema.
  A query from orders into `users.users` fails with "permission denied for schema users".

`python -m app.cli migrate` makes all of it, idempotently: the roles (a login's password set
from its URL), the schema, the ownership of objects made before this existed, the migrations,
then the grants (existing tables, and default privileges for the tables later migrations add).
The operator's login needs CREATEROLE and CREATE on the database (or is a superuser).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

ROLE_PREFIX = "keystone"
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def owner_role(schema: str) -> str:
    return f"{ROLE_PREFIX}_{schema}_owner"


def default_login(schema: str) -> str:
    return f"{ROLE_PREFIX}_{schema}"


def login_url(operator_url: str, schema: str) -> str:
    """The module's login on the operator's server and database, without a password (for the
    embedded Postgres of `make run` and the tests, which trusts local connections)."""
    url = make_url(operator_url).set(username=default_login(schema), password=None)
    return url.render_as_string(hide_password=False)


def _create_role(connection: Connection, role: str, options: str) -> None:
    # Roles are cluster-wide: two databases of one server may make the same one at once.
    connection.execute(
        text(
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f'CREATE ROLE "{role}" {options}; END IF; '
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
    )


def _objects_owned_by_others(schema: str, owner: str) -> str:
    """ALTER ... OWNER statements for what an earlier migration run made as the operator."""
    return f"""
    DO $$ DECLARE object record; BEGIN
      FOR object IN
        SELECT c.relname AS name, CASE c.relkind WHEN 'v' THEN 'VIEW'
               WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND pg_get_userbyid(c.relowner) <> '{owner}'
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid
                          AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
      LOOP
        EXECUTE format('ALTER %s %I.%I OWNER TO %I', object.kind, '{schema}', object.name,
                       '{owner}');
      END LOOP;
      FOR object IN
        SELECT p.oid::regprocedure::text AS name FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = '{schema}' AND pg_get_userbyid(p.proowner) <> '{owner}'
      LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO %I', object.name, '{owner}');
      END LOOP;
    END $$
    """  # noqa: S608 - our own schema and role names


def become_owner(connection: Connection, schema: str) -> None:
    """Inside a migration's transaction, as the operator: the owner role and its schema exist
    (made if missing), and the rest of the transaction runs as that role."""
    owner = owner_role(schema)
    _create_role(connection, owner, "NOLOGIN")
    connection.execute(
        text(
            "DO $$ BEGIN "
            f"IF current_user <> '{owner}' AND NOT pg_has_role('{owner}', 'MEMBER') THEN "
            f'GRANT "{owner}" TO CURRENT_USER; END IF; END $$'
        )
    )
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}" AUTHORIZATION "{owner}"'))
    connection.execute(text(f'ALTER SCHEMA "{schema}" OWNER TO "{owner}"'))
    connection.execute(text(f'REVOKE ALL ON SCHEMA "{schema}" FROM PUBLIC'))
    connection.execute(text(_objects_owned_by_others(schema, owner)))
    connection.execute(text(f'SET LOCAL ROLE "{owner}"'))


def _grant_login(connection: Connection, schema: str, url: str, operator: str | None) -> None:
    login = make_url(url)
    if not login.username or login.username == operator:
        return  # the module shares the operator's login: nothing to grant
    role, owner = login.username, owner_role(schema)
    if not _ROLE_NAME.fullmatch(role):
        raise ValueError(
            f"{schema.upper()}_DATABASE_URL: the user name must be a-z, 0-9 or _ (got {role!r})"
        )
    _create_role(connection, role, "LOGIN")
    if login.password:
        password = str(login.password).replace("'", "''")
        connection.execute(text(f"ALTER ROLE \"{role}\" LOGIN PASSWORD '{password}'"))
    tables = "SELECT, INSERT, UPDATE, DELETE"
    sequences = "USAGE, SELECT, UPDATE"
    for statement in (
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
        f'GRANT {tables} ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
        f'GRANT {sequences} ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA "{schema}" '
        f'GRANT {tables} ON TABLES TO "{role}"',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA "{schema}" '
        f'GRANT {sequences} ON SEQUENCES TO "{role}"',
    ):
        connection.execute(text(statement))


async def grant_logins(engine: AsyncEngine, logins: Mapping[str, str]) -> None:
    """Each module's login (by schema: its URL) may use its own schema, and only that."""
    operator = engine.url.username
    for schema, url in logins.items():
        async with engine.begin() as connection:
            await connection.run_sync(_grant_login, schema, url, operator)
