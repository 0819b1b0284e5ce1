"""What the outbound tests share: settings that let the sender reach the loopback receiver, a
clock the test moves, and a way to run the sender until nothing is due."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.outbound.receiver import Receiver, running_receiver
from tidings import subscription_admin
from tidings.config import Settings
from tidings.domain.events import EventKind, Incoming, NormalizedEvent
from tidings.outbound.dispatcher import Dispatcher, Totals
from tidings.storage import connections
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database
from tidings.storage.schema import deliveries, delivery_attempts, outbound_events
from tidings.storage.subscriptions import StoredSubscription
from tidings.unit_of_work import apply_events

START = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)  # before any real "now" the tests meet


class Clock:
    """Now, as the test says: moves only when told."""

    def __init__(self, at: datetime = START) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)

    def to(self, at: datetime) -> None:
        self.at = max(self.at, at)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with the loopback receiver allowed and a quick sender."""
    return settings.model_copy(
        update={
            "outbound_allowed_hosts": "127.0.0.1",
            "outbound_timeout_seconds": 2.0,
            "outbound_poll_seconds": 0.1,
        }
    )


@pytest.fixture
def out_settings(settings: Settings) -> Settings:
    return settings


@dataclass
class Outbound:
    db: Database
    settings: Settings
    clock: Clock
    connection: StoredConnection

    def subscribe(self, url: str, **fields: Any) -> StoredSubscription:
        return subscription_admin.add(self.db, self.settings, url, now=self.clock(), **fields)

    def event(
        self,
        pmid: str,
        kind: str,
        minute: int = 0,
        connection: StoredConnection | None = None,
        **f: Any,
    ) -> None:
        event = NormalizedEvent(
            provider_message_id=pmid,
            kind=EventKind(kind),
            occurred_at=START + timedelta(minutes=minute),
            **f,
        )
        source = connection or self.connection
        apply_events(self.db, [Incoming(source, event, None, self.clock())], self.clock())

    def drain(self, settings: Settings | None = None, **kw: Any) -> Totals:
        dispatcher = Dispatcher(self.db, settings or self.settings, now=self.clock, **kw)

        async def run() -> Totals:
            try:
                return await dispatcher.drain()
            finally:
                await dispatcher.aclose()

        return asyncio.run(run())

    def deliveries(self) -> list[Any]:
        with self.db.read() as conn:
            return list(conn.execute(select(deliveries).order_by(deliveries.c.id)).all())

    def attempts(self) -> list[Any]:
        with self.db.read() as conn:
            return list(
                conn.execute(select(delivery_attempts).order_by(delivery_attempts.c.id)).all()
            )

    def events(self) -> list[Any]:
        with self.db.read() as conn:
            return list(conn.execute(select(outbound_events).order_by(outbound_events.c.id)).all())


@pytest.fixture
def outbound(db: Database, out_settings: Settings) -> Outbound:
    with db.write() as conn:
        connection = connections.add_connection(
            conn, "callbell", "cb", "s3cret", {"campaign_key": "campaign"}, START
        )
    return Outbound(db, out_settings, Clock(), connection)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as found:
        yield found
