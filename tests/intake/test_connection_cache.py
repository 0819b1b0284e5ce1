"""The intake's connection cache: what it answers, and how often it reads the store for it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tidings.intake.app import ConnectionCache, KnownConnection
from tidings.storage import connections
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database


class CountingCache(ConnectionCache):
    """The real cache on the real store, counting its reads."""

    def __init__(self, db: Database, ttl: float) -> None:
        super().__init__(db, ttl)
        self.reads = 0

    def _load(self, provider: str, name: str) -> StoredConnection | None:
        self.reads += 1
        return super()._load(provider, name)


def _add(db: Database, name: str) -> None:
    with db.write() as conn:
        connections.add_connection(conn, "evolution", name, "s3cret", {}, datetime.now(UTC))


def test_requests_that_find_an_entry_gone_share_one_read(db: Database) -> None:
    _add(db, "main")
    cache = CountingCache(db, ttl=0.05)

    async def scenario() -> list[object]:
        first = await asyncio.gather(*(cache.get("evolution", "main") for _ in range(64)))
        await asyncio.sleep(0.1)  # the entry runs out
        again = await asyncio.gather(*(cache.get("evolution", "main") for _ in range(64)))
        return [*first, *again]

    found = asyncio.run(scenario())
    assert all(
        isinstance(known, KnownConnection) and known.connection.name == "main" for known in found
    )
    assert cache.reads == 2


def test_unknown_names_are_read_each_time_and_never_kept(db: Database) -> None:
    _add(db, "main")
    cache = CountingCache(db, ttl=60)

    async def scenario() -> list[object]:
        together = await asyncio.gather(*(cache.get("evolution", "typo") for _ in range(10)))
        alone = await cache.get("evolution", "typo")
        return [*together, alone]

    assert asyncio.run(scenario()) == [None] * 11
    assert cache.reads == 2  # one for the ten that came together, one for the last
    assert not cache._entries


def test_a_request_that_goes_away_leaves_the_read_to_the_others(db: Database) -> None:
    _add(db, "main")
    cache = CountingCache(db, ttl=60)

    async def scenario() -> object:
        leaving = asyncio.create_task(cache.get("evolution", "main"))
        staying = asyncio.create_task(cache.get("evolution", "main"))
        await asyncio.sleep(0)  # both wait for the one read
        leaving.cancel()
        return await staying

    known = asyncio.run(scenario())
    assert isinstance(known, KnownConnection) and known.connection.name == "main"
    assert cache.reads == 1
