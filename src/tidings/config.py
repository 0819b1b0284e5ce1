"""Settings from `TIDINGS_*` environment variables, or a TOML file named by `TIDINGS_CONFIG`.

Environment variables win over the file, so one setting can be overridden without editing it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tidings.domain.recipients import REGIONS

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Everything an operator can set. Defaults give the embedded mode on a SQLite file."""

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    database_url: str = "sqlite:///tidings.db"
    broker_url: str | None = None
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    store_timeout_seconds: float = Field(default=2.0, gt=0)
    retention_days: int = Field(default=30, gt=0)
    receipt_retry_schedule: str = "10,60,300,1800,7200"
    worker_batch_size: int = Field(default=250, gt=0, le=5000)
    worker_idle_seconds: float = Field(default=1.0, gt=0)
    worker_linger_seconds: float = Field(default=0.05, ge=0)
    worker_process: bool = True
    public_url: str | None = None
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

    @field_validator("receipt_retry_schedule")
    @classmethod
    def _schedule_is_numbers(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 10,60,300") from None
        if not delays or any(d < 0 for d in delays):
            raise ValueError("must list at least one non-negative delay in seconds")
        return value

    @field_validator("default_region")
    @classmethod
    def _region_is_known(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        region = value.strip().upper()
        if region not in REGIONS:
            raise ValueError(f"{value!r} is not a region code phone numbers use (e.g. BR, US)")
        return region

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
    if config_file and not Path(config_file).is_file():
        raise FileNotFoundError(f"TIDINGS_CONFIG names {config_file!r}, which is not a file")
    return Settings()
