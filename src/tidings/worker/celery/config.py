"""The Celery app, configured from `Settings`: the broker URL (checked), JSON messages acked
late, queues routed, results ignored, and the tasks and beat schedule of tidings. Building one
connects to nothing."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from celery import Celery

from tidings.config import BROKER_SCHEMES, Settings
from tidings.worker.celery.beat import StartNowScheduler, beat_schedule
from tidings.worker.celery.names import DELIVER, INBOX_QUEUE, JOBS_QUEUE, OUTBOUND_QUEUE, RUN_JOB
from tidings.worker.celery.tasks import Tasks, register_tasks

__all__ = ["BrokerNotConfigured", "broker_url", "close_celery", "create_celery"]

APP_NAME: Final = "tidings.worker"


class BrokerNotConfigured(ValueError):
    """TIDINGS_BROKER_URL is missing or names a broker tidings does not support."""


def broker_url(settings: Settings) -> str:
    """The broker URL, checked: Redis (`redis://`, `rediss://`) or RabbitMQ (`amqp://`)."""
    url = (settings.broker_url or "").strip()
    if not url:
        raise BrokerNotConfigured(
            "TIDINGS_BROKER_URL is not set: scale-out needs a broker, "
            "e.g. redis://localhost:6379/0 or amqp://guest:guest@localhost:5672// "
            "(without one, `tidings serve` runs the worker and scheduler itself)"
        )
    scheme = urlsplit(url).scheme
    if scheme not in BROKER_SCHEMES:
        raise BrokerNotConfigured(
            f"TIDINGS_BROKER_URL has scheme {scheme or 'none'!r}; tidings supports "
            "redis://, rediss:// (Redis) and amqp://, amqps:// (RabbitMQ)"
        )
    return url


def create_celery(settings: Settings, *, publish_timeout: float | None = None) -> Celery:
    """A Celery app for these settings, with the tidings tasks and beat schedule.

    `publish_timeout` bounds how long sending one message may take when the broker is down
    (web nodes use it; workers and beat keep Celery's patient reconnecting instead).
    """
    url = broker_url(settings)
    app = Celery(APP_NAME, set_as_current=False)
    app.conf.update(
        broker_url=url,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for its broker to come back
        result_backend=None,
        task_ignore_result=True,
        result_expires=None,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        task_default_queue=INBOX_QUEUE,
        task_routes={RUN_JOB: {"queue": JOBS_QUEUE}, DELIVER: {"queue": OUTBOUND_QUEUE}},
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
        beat_scheduler=StartNowScheduler,
    )
    if publish_timeout is not None:
        app.conf.update(
            broker_connection_timeout=publish_timeout,
            broker_transport_options={
                # one quick retry, then give up: the caller logs it and the sweep covers for it
                "max_retries": 1,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.2,
                "socket_connect_timeout": publish_timeout,
                "socket_timeout": publish_timeout,
            },
        )
    register_tasks(app, settings)
    return app


def close_celery(app: Celery) -> None:
    """Close what an app from `create_celery` opened: its store connections, broker pools."""
    tasks: Tasks | None = getattr(app, "tidings_tasks", None)
    if tasks is not None:
        tasks.close()
    app.close()
