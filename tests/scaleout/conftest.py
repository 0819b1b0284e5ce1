"""Scale-out fixtures: a PostgreSQL store, a private corner of a real broker, and a cluster of
real `tidings serve --no-worker`, `tidings worker` and `tidings beat` processes.

Scale-out is PostgreSQL-only, so these tests use PostgreSQL whatever `--db` says: the `db_url`
store under `--db postgresql`, a database of their own under `--db sqlite`. Each test gets its
own Redis database number (claimed with a marker key, flushed afterwards) or its own RabbitMQ
virtual host (made with rabbitmqctl, deleted afterwards), so that concurrent runs, and messages
left over from earlier runs, never share a queue with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_postgres, on_postgresql
from tests.scaleout.cluster import BROKERS, Cluster, rabbitmq_vhost, redis_database


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database: the suite's own with --db postgresql, else one made here."""
    if on_postgresql(request.config):
        yield request.getfixturevalue("db_url")
        return
    yield from fresh_postgres("tidings_scaleout")


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A working broker of each kind: Redis, then RabbitMQ."""
    yield from redis_database() if request.param == "redis" else rabbitmq_vhost()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, broker_url: str) -> Iterator[Cluster]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_DATABASE_URL=pg_url,
        TIDINGS_BROKER_URL=broker_url,
        TIDINGS_LOG_LEVEL="INFO",
        TIDINGS_STORE_TIMEOUT_SECONDS="5",
    )
    running = Cluster(tmp_path, env)
    try:
        yield running
    finally:
        running.close()
