"""The `postgres` tests: real worker processes sharing one PostgreSQL.

They need a server: `DEVIC_TEST_POSTGRES_DSN` (a libpq URL whose user may
create databases). `.ci/run` starts a throwaway cluster and sets it. Without
it the tests skip with the reason, except under `CI=true`, where they fail:
CI must never pass by skipping them. Each session works in a database of its
own, dropped at the end. Sockets: 127.0.0.1 only (the emulator and the
database both listen there).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from langchain_devic.testing import DevicEmulator

DSN_VARIABLE = "DEVIC_TEST_POSTGRES_DSN"
LOOPBACK = ["127.0.0.1"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test here `postgres`, and allow it loopback sockets only."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.allow_hosts(LOOPBACK))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI=true: the postgres tests must run, not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A DSN of a fresh database for this session (dropped afterwards)."""
    server = os.environ.get(DSN_VARIABLE)
    if not server:
        _unavailable(f"no PostgreSQL: set {DSN_VARIABLE} (.ci/run starts one)")
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[test]')")
    assert server is not None
    host = urlsplit(server).hostname
    if host not in LOOPBACK:
        _unavailable(f"{DSN_VARIABLE} must name 127.0.0.1, not {host!r}")
    name = f"devic_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable(f"cannot reach PostgreSQL at {DSN_VARIABLE}: {exc}")
    parts = urlsplit(server)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def base_url(emulator: DevicEmulator) -> Iterator[str]:
    """The module's emulator (its `emulator` fixture), served on 127.0.0.1."""
    with emulator.serve(host="127.0.0.1") as server:
        yield server.base_url


@pytest.fixture(scope="module")
def database(postgres_dsn: str) -> str:
    """The session database with LangGraph's tables, made once, before workers."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    with PostgresSaver.from_conn_string(postgres_dsn) as saver:
        saver.setup()
    with PostgresStore.from_conn_string(postgres_dsn) as store:
        store.setup()
    return postgres_dsn
