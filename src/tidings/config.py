"""Settings from `TIDINGS_*` environment variables, or a TOML file named by `TIDINGS_CONFIG`.

Environment variables win over the file, so one setting can be overridden without editing it.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging  # the standard library's
import math
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tidings.domain.addresses import AddressPolicy
from tidings.domain.call_times import zone_named
from tidings.domain.calls import LOCALES, locale_of
from tidings.domain.recipients import REGIONS
from tidings.storage.engine import sqlite_url_problem

__all__ = ["Settings", "load_settings"]


# The brokers Celery is used with here: Redis and RabbitMQ.
BROKER_SCHEMES: Final = ("redis", "rediss", "amqp", "amqps", "pyamqp")


class Settings(BaseSettings):
    """Everything an operator can set. Defaults give the embedded mode on a SQLite file."""

    # Errors never repeat a value: a URL may hold a password.
    model_config = SettingsConfigDict(
        env_prefix="TIDINGS_", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = "sqlite:///tidings.db"
    broker_url: str | None = None
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    store_timeout_seconds: float = Field(default=2.0, gt=0)
    retention_days: int = Field(default=30, gt=0)
    receipt_retry_schedule: str = "10,60,300,1800,7200"
    worker_batch_size: int = Field(default=500, gt=0, le=5000)
    worker_idle_seconds: float = Field(default=1.0, gt=0)
    worker_linger_seconds: float = Field(default=0.05, ge=0)
    worker_process: bool = True
    public_url: str | None = None
    # Proxies whose X-Forwarded-For/-Proto are believed (comma-separated addresses, or "*"):
    # the dashboard counts failed logins per client address, which behind a proxy is its.
    trusted_proxies: str = "127.0.0.1"
    # Where `tidings serve` listens unless --host/--port say otherwise.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    log_level: str = "INFO"
    log_json: bool = False
    # A line per HTTP request (uvicorn's access log), off by default: receipts and /metrics
    # already record every webhook, and the line costs the intake a quarter of its rate.
    access_log: bool = False
    timezone: str = "UTC"
    # Region (ISO 3166 two letters, e.g. BR) for recipients' phone numbers written without a
    # country code; without it such numbers are read as international ("5531..." = "+5531...").
    default_region: str | None = None
    outbound_allowed_hosts: str = ""
    # Scheduled jobs: "NAME=SECONDS,..." overrides the intervals in tidings.scheduler.jobs.JOBS
    # (both runners: the embedded scheduler and `tidings beat`).
    job_intervals: str = ""
    # Scale-out: how often `tidings beat` has a worker apply whatever is pending, so receipts
    # whose wake-up message was lost (broker down, worker killed) wait at most this long.
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    # Callyzer verification poll (the `poll_callyzer` job; its interval is in job_intervals):
    # how far back an employee never polled before looks, how long one request to Callyzer's
    # API may take, and how many calls one page asks for (Callyzer allows at most 100).
    callyzer_poll_lookback_days: float = Field(default=7.0, gt=0)
    callyzer_timeout_seconds: float = Field(default=30.0, gt=0)
    callyzer_page_size: int = Field(default=100, gt=0, le=100)
    # Calls: how many times in all a call is matched to a lead by its number (on arrival,
    # then by the job match_unmatched_calls) before it is left for a person.
    call_match_max_attempts: int = Field(default=3, ge=1, le=1000)
    # Language of display labels (call types) where a request names none (`?locale=`).
    locale: str = "en"
    # Outbound webhooks (README "Outbound webhooks"): seconds between attempts, then dead.
    outbound_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    outbound_timeout_seconds: float = Field(default=5.0, gt=0)
    outbound_concurrency: int = Field(default=64, gt=0, le=1000)
    outbound_endpoint_concurrency: int = Field(default=16, gt=0, le=1000)
    outbound_batch_size: int = Field(default=500, gt=0, le=5000)
    outbound_poll_seconds: float = Field(default=0.5, gt=0)
    # Scale-out: how often `tidings beat` has a worker send what is due (retries, lost wake-ups).
    outbound_sweep_seconds: float = Field(default=5.0, gt=0)
    # An endpoint whose attempts all failed for this long is disabled (default 5 days).
    outbound_disable_after_seconds: float = Field(default=5 * 86400.0, gt=0, le=3650 * 86400.0)
    # After a secret rotation the old secret signs too for this long (default 24 h).
    outbound_secret_overlap_seconds: float = Field(default=86400.0, ge=0, le=365 * 86400.0)
    # Sending (README "Sending"): how long one call to a provider's API may take, and how long
    # a send may stay unanswered before tidings takes it for interrupted (a crash, a kill) and
    # marks its outcome unknown: longer than a send with its retries can last.
    send_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    send_stale_seconds: float = Field(default=300.0, gt=0)
    # A campaign without a rate has this many requests in flight at once (of a batch of 64
    # contacts, of which a crash may leave as many with an unknown outcome); one with a rate
    # sends one at a time, at its pace.
    dispatch_concurrency: int = Field(default=16, ge=1, le=256)
    # Connection health (README "Connection health"): dispatch halves its rate while the
    # score is under the threshold, and pauses a campaign after this many errors in a row.
    health_threshold: float = Field(default=0.8, ge=0, le=1)
    pause_after_errors: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _stale_outlasts_a_send(self) -> Settings:
        # One send may try 3 times, each up to the time-out plus a Retry-After of 30 s: a send
        # still running must never be taken for interrupted.
        longest = 3 * (self.send_timeout_seconds + 30)
        if self.send_stale_seconds <= longest:
            raise ValueError(
                f"TIDINGS_SEND_STALE_SECONDS must exceed {longest:g} (3 tries of "
                "TIDINGS_SEND_TIMEOUT_SECONDS plus 30 s each), or live sends would be closed"
            )
        return self

    @field_validator("receipt_retry_schedule", "outbound_retry_schedule")
    @classmethod
    def _schedule_is_numbers(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 10,60,300") from None
        if not delays or any(d < 0 for d in delays):
            raise ValueError("must list at least one non-negative delay in seconds")
        return value

    @field_validator("database_url")
    @classmethod
    def _sqlite_store_is_a_file(cls, value: str) -> str:
        """Refused here, at start, rather than as a traceback from the first connection."""
        problem = sqlite_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_a_url(cls, value: str | None) -> str | None:
        """Printed into every intake URL a provider is given: a typo would be copied there."""
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{value!r} is not a URL providers can reach: give the scheme and host, "
                "e.g. https://tidings.example.com"
            )
        scheme, rest = value.strip().split(":", 1)
        return f"{scheme.lower()}:{rest}"  # the dashboard's Secure cookies look for "https:"

    @field_validator("broker_url")
    @classmethod
    def _broker_is_redis_or_rabbitmq(cls, value: str | None) -> str | None:
        """Refused at start by every command (doctor too), not when a worker first connects."""
        if value is None or not value.strip():
            return None  # no broker: the embedded mode
        url = value.strip()
        scheme = urlsplit(url).scheme.lower()
        if scheme not in BROKER_SCHEMES:
            said = f"scheme {scheme!r}" if scheme else "no scheme"
            raise ValueError(
                f"the URL has {said} (not shown: it may hold a password); tidings supports "
                "redis://, rediss:// (Redis) and amqp://, amqps:// (RabbitMQ), e.g. "
                "redis://localhost:6379/0"
            )
        return scheme + url[len(scheme) :]  # Celery looks for the scheme in lower case

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        """Addresses or networks, or `*`: anything else would silently trust no one."""
        for item in (part.strip() for part in value.split(",")):
            if not item or item == "*":  # an empty list trusts no proxy
                continue
            try:
                ipaddress.ip_network(item)  # strict, as uvicorn reads it: 10.1.0.0/16
            except ValueError:
                raise ValueError(
                    f"{item!r} is no address or network: give proxies' IP addresses or "
                    "networks (host bits zero), comma "
                    "separated (e.g. 10.0.0.5,10.1.0.0/16), or * when only proxies reach tidings"
                ) from None
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level_is_known(cls, value: str) -> str:
        """The name `configure_logging` and Celery take; refused at start, not on first use."""
        level = logging.getLevelNamesMapping().get(value.strip().upper())
        if level is None:
            raise ValueError(
                f"{value!r} is not a log level: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
            )
        return str(logging.getLevelName(level))

    @field_validator("default_region")
    @classmethod
    def _region_is_known(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        region = value.strip().upper()
        if region not in REGIONS:
            raise ValueError(f"{value!r} is not a region code phone numbers use (e.g. BR, US)")
        return region

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, value: str) -> str:
        if value.strip().upper() in ("", "UTC"):  # no zone database needed
            return "UTC"
        if zone_named(value) is None:
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. UTC, America/Sao_Paulo, Asia/Kolkata)"
            )
        return value.strip()

    @field_validator("locale")
    @classmethod
    def _locale_has_labels(cls, value: str) -> str:
        found = locale_of(value)
        if found is None:
            raise ValueError(f"{value!r} has no labels; known: {', '.join(sorted(LOCALES))}")
        return found

    @field_validator("job_intervals")
    @classmethod
    def _intervals_are_names_and_seconds(cls, value: str) -> str:
        _parse_intervals(value)
        return value

    @property
    def job_interval_overrides(self) -> dict[str, float]:
        """Job name → interval in seconds, for the jobs whose interval `job_intervals` sets."""
        return _parse_intervals(self.job_intervals)

    @property
    def retry_delays(self) -> list[float]:
        """Seconds to wait before each retry of a failed receipt; its length bounds the retries."""
        return [float(part) for part in self.receipt_retry_schedule.split(",") if part.strip()]

    @property
    def outbound_policy(self) -> AddressPolicy:
        """Where subscriber URLs may point: public addresses, plus what the operator allows."""
        return AddressPolicy.parse(self.outbound_allowed_hosts)

    @property
    def outbound_retry_delays(self) -> list[float]:
        """Seconds before each retry of a failed outbound delivery; then it is dead."""
        return [float(part) for part in self.outbound_retry_schedule.split(",") if part.strip()]

    @field_validator("outbound_allowed_hosts")
    @classmethod
    def _allowed_hosts_parse(cls, value: str) -> str:
        AddressPolicy.parse(value)
        return value

    @property
    def embedded(self) -> bool:
        """No broker configured means one process does everything."""
        return not self.broker_url

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("TIDINGS_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def _parse_intervals(value: str) -> dict[str, float]:
    intervals: dict[str, float] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        name, sep, seconds = part.partition("=")
        try:
            interval = float(seconds)
        except ValueError:
            interval = -1.0
        if not sep or not name.strip() or not 0 < interval < math.inf:
            raise ValueError(
                f"{part.strip()!r} is not NAME=SECONDS with SECONDS > 0 "
                "(e.g. retry_due_receipts=5,purge_old_receipts=3600)"
            )
        intervals[name.strip()] = interval
    return intervals


def load_settings() -> Settings:
    """Read the settings now (never at import time, so tests can set the environment first)."""
    config_file = os.environ.get("TIDINGS_CONFIG")
    if config_file:
        if not Path(config_file).is_file():
            raise FileNotFoundError(f"TIDINGS_CONFIG names {config_file!r}, which is not a file")
        check_config_file(Path(config_file))
    return Settings()


# TIDINGS_* names that are no setting but are ours: the config file's name, the Procfile's
# worker concurrency, the test suite's browser, and the README's examples for subscribers.
_OURS_BUT_NO_SETTING = frozenset(
    {
        "TIDINGS_CONFIG",
        "TIDINGS_WORKER_CONCURRENCY",
        "TIDINGS_CHROMIUM",
        "TIDINGS_SCREENSHOTS",
        "TIDINGS_WEBHOOK_SECRET",
        "TIDINGS_OUTBOUND_SECRET",
        "TIDINGS_TOKEN",
    }
)


@dataclass(frozen=True)
class UnknownVariable:
    """A TIDINGS_* variable that names no setting, and the setting it is likely a typo of."""

    name: str
    meant: str | None

    def __str__(self) -> str:
        hint = f" (did you mean {self.meant}?)" if self.meant else ""
        return f"{self.name} is no tidings setting{hint}; it is ignored"


def unknown_variables(environ: Mapping[str, str]) -> list[UnknownVariable]:
    """The TIDINGS_* variables that name no setting: ignored, so a misspelled one leaves its
    setting at the default without a word."""
    settings = {f"TIDINGS_{name.upper()}" for name in Settings.model_fields}
    bare = [setting.removeprefix("TIDINGS_") for setting in settings]
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("TIDINGS_") or upper in settings | _OURS_BUT_NO_SETTING:
            continue
        guess = _closest(upper.removeprefix("TIDINGS_"), bare)
        found.append(UnknownVariable(name, f"TIDINGS_{guess}" if guess else None))
    return found


def _closest(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` is most likely a typo of, if any is close."""
    found = difflib.get_close_matches(name, list(known), 1)
    return found[0] if found else None


def check_config_file(path: Path) -> None:
    """ValueError naming the file when it is not TOML or names a setting that does not exist:
    a misspelled key would otherwise be ignored and its default used without a word."""
    try:
        keys = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"TIDINGS_CONFIG file {path} is not valid TOML: {error}") from None
    except OSError as error:  # a file this user may not read
        raise ValueError(f"TIDINGS_CONFIG file {path} cannot be read: {error.strerror}") from None
    known = {name.lower() for name in Settings.model_fields}
    unknown = [key for key in keys if key.lower() not in known]
    if not unknown:
        return
    said = []
    for key in unknown:
        guess = _closest(key.lower().removeprefix("tidings_"), known)
        said.append(f"{key!r}" + (f" (did you mean {guess!r}?)" if guess else ""))
    raise ValueError(
        f"TIDINGS_CONFIG file {path} names no such setting: {', '.join(said)}; its keys are "
        "the TIDINGS_* names without the prefix, in lower case"
    )
