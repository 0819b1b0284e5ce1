"""What every `tidings` command shares: settings, the store it talks to, and how expected
failures become one line on stderr (exit 1) instead of a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import click
from pydantic import ValidationError

from tidings.config import Settings, load_settings, unknown_variables
from tidings.domain.errors import TidingsError
from tidings.intake_urls import intake_base, listen_url
from tidings.storage.db import Database
from tidings.storage.readiness import open_ready

__all__ = [
    "TidingsGroup",
    "intake_base",
    "listen_url",
    "moment",
    "now",
    "problems",
    "settings",
    "store",
]


class TidingsGroup(click.Group):
    """A command group that turns any error tidings raises on purpose (store down, unknown
    connection, bad option, …) into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TidingsError as error:
            raise click.ClickException(" ".join(str(error).split())) from None


def settings() -> Settings:
    _warn_of_unknown_variables()
    try:
        return load_settings()
    except ValidationError as error:
        raise click.ClickException(f"configuration: {problems(error)}") from None
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(f"configuration: {error}") from None


@cache
def _warn_of_unknown_variables() -> None:
    """Once per command, however often it reads the settings."""
    for variable in unknown_variables(os.environ):
        click.echo(f"warning: {variable}", err=True)


def problems(error: ValidationError) -> str:
    """Each wrong setting as `TIDINGS_NAME (name in a config file): what is wrong`, all on
    one line."""
    said = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        key = "_".join(str(part) for part in problem["loc"])
        said.append(f"TIDINGS_{key.upper()} ({key}): {message}" if key else message)
    return "; ".join(said)


def now() -> datetime:
    return datetime.now(UTC)


def moment(value: str | None, zone: str, option: str) -> datetime | None:
    """The moment an option names; a date alone is the start of that day, and a time without
    an offset is in the deployment's time zone (TIDINGS_TIMEZONE)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(zone))


@contextmanager
def store(config: Settings) -> Iterator[Database]:
    """The existing, migrated store for one command; closed when the command ends."""
    db = open_ready(config.database_url, config.store_timeout_seconds)
    try:
        yield db
    finally:
        db.dispose()
