"""The intake's connection cache: what it answers, and how often it reads the store for it."""

from __future__ import annotations

import asyncio
import gc
import time
from datetime import UTC, datetime
from typing import Any

from tidings.domain.errors import StorageUnavailable
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


class FailingCache(CountingCache):
    """The store is down: every read fails, after a moment."""

    def _load(self, provider: str, name: str) -> StoredConnection | None:
        self.reads += 1
        time.sleep(0.05)
        raise StorageUnavailable("the store is down")


def test_a_failed_read_is_not_remembered_and_nobody_else_hears_of_it(db: Database) -> None:
    """The request waiting gets the failure; one that went away leaves it unread, and asyncio
    must not log it as an error nobody retrieved (it does on Python 3.12 and later, where a
    shield no longer takes its inner task's error); the next request reads the store again."""
    cache = FailingCache(db, ttl=60)

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        reported: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, c: reported.append(c))
        heard: list[str] = []

        async def ask() -> None:
            try:
                await cache.get("evolution", "main")
            except StorageUnavailable as error:
                heard.append(str(error))

        gone = asyncio.create_task(ask())
        staying = asyncio.create_task(ask())
        await asyncio.sleep(0.01)
        gone.cancel()  # its client hung up
        await staying
        gone_alone = asyncio.create_task(ask())
        await asyncio.sleep(0.01)
        gone_alone.cancel()  # nobody waits for this read any more
        await asyncio.sleep(0.2)  # it fails meanwhile
        gc.collect()
        await asyncio.sleep(0)
        await ask()
        return reported, heard

    reported, heard = asyncio.run(scenario())
    assert reported == []
    assert heard == ["the store is down"] * 2  # the one that stayed, and the last
    assert cache.reads == 3 and not cache._loading
