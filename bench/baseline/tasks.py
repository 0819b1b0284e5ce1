"""Baseline worker: the Celery app and the task that stores Infobip email reports.

Written the way such services are commonly built by hand ("a Flask + Celery app that stores
Infobip email reports", as the people tidings replaces describe theirs): a declarative ORM
model, one Session per task, one ORM object per report, one commit per task, SQLite with its
defaults. It is the yardstick for `bench/run.py`, not an example to follow: see app.py for what
it promises (and does not).

Configuration, from the environment (set by bench/run.py):
    BASELINE_BROKER_URL    Redis database that carries the tasks (redis://127.0.0.1:6379/5)
    BASELINE_DATABASE_URL  where reports are stored (sqlite:///baseline.db)
    BASELINE_READY_FILE    touched once the worker consumes, so the bench starts on time
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready
from sqlalchemy import DateTime, String, Text, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

QUEUE = "email-webhook"
BROKER_URL = os.environ.get("BASELINE_BROKER_URL", "redis://127.0.0.1:6379/5")
DATABASE_URL = os.environ.get("BASELINE_DATABASE_URL", "sqlite:///baseline.db")

celery_app = Celery("baseline", broker=BROKER_URL)
celery_app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
)

engine = create_engine(DATABASE_URL)
Session = sessionmaker(engine)


class Base(DeclarativeBase):
    pass


class EmailReport(Base):
    """One Infobip email delivery report (one item of `results[]`)."""

    __tablename__ = "email_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(100), index=True)
    bulk_id: Mapped[str | None] = mapped_column(String(100))
    recipient: Mapped[str | None] = mapped_column(String(320))
    status_group: Mapped[str | None] = mapped_column(String(50))
    status_name: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[str | None] = mapped_column(String(40))
    done_at: Mapped[str | None] = mapped_column(String(40))
    callback_data: Mapped[str | None] = mapped_column(Text)
    stored_at: Mapped[datetime] = mapped_column(DateTime)  # naive UTC, when the row was added


@worker_init.connect
def _create_tables(**_: Any) -> None:
    Base.metadata.create_all(engine)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    # A forked pool process must not reuse the parent's SQLite connection.
    engine.dispose(close=False)


@worker_ready.connect
def _announce_ready(**_: Any) -> None:
    ready_file = os.environ.get("BASELINE_READY_FILE")
    if ready_file:
        Path(ready_file).touch()


@celery_app.task(name="baseline.store_email_report", queue=QUEUE)
def store_email_report(payload: dict[str, Any]) -> int:
    """Insert one row per result; returns how many."""
    results = payload.get("results") or []
    with Session() as session:
        for result in results:
            status = result.get("status") or {}
            session.add(
                EmailReport(
                    message_id=str(result.get("messageId", "")),
                    bulk_id=result.get("bulkId"),
                    recipient=result.get("to"),
                    status_group=status.get("groupName"),
                    status_name=status.get("name"),
                    sent_at=result.get("sentAt"),
                    done_at=result.get("doneAt"),
                    callback_data=result.get("callbackData"),
                    stored_at=datetime.now(UTC).replace(tzinfo=None),
                )
            )
        session.commit()
    return len(results)
