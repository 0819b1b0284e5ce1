"""Helpers for send tests: a SenderConfig pointed at a fake, waits recorded instead of slept,
and a check that a body only uses fields (and JSON types) of a documented example."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.fakes.provider_apis import (
    FakeCallbell,
    FakeEvolution,
    FakeInfobip,
    FakeMeta,
    FakeProviderApi,
    FakeTwilio,
)
from tidings.providers.send import RetryPolicy, Sender, SenderConfig, SendRequest
from tidings.providers.senders import make_sender

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
CALLBACK = "https://tidings.example.com/hooks/PROVIDER/sales?token=s3cret"


@dataclass
class Waits:
    """Stands in for time.sleep: records how long the client asked to wait."""

    asked: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def config(
    options: dict[str, str],
    *,
    waits: Waits | None = None,
    secret: str | None = None,
    callback_url: str | None = None,
    timeout: float = 5.0,
    retry: RetryPolicy | None = None,
    connection: str = "sales",
) -> SenderConfig:
    return SenderConfig(
        connection=connection,
        options=options,
        secret=secret,
        callback_url=callback_url,
        timeout=timeout,
        retry=retry or RetryPolicy(),
        sleep=waits if waits is not None else Waits(),
        clock=lambda: NOW,
    )


# How each provider's sender is set up against its fake, and a request it can send.
@dataclass(frozen=True)
class Setup:
    provider: str
    fake: type[FakeProviderApi]
    options: Callable[[Any], dict[str, str]]
    secret: Callable[[Any], str | None]
    request: SendRequest
    wrong_credentials: Callable[[Any], tuple[dict[str, str], str | None]]


SETUPS: dict[str, Setup] = {
    "evolution": Setup(
        "evolution",
        FakeEvolution,
        lambda f: {"api_url": f.url, "api_key": f.api_key},
        lambda f: None,
        SendRequest(recipient="+55 31 98296-8010", text="Olá!"),
        lambda f: ({"api_url": f.url, "api_key": "wrong-key"}, None),
    ),
    "callbell": Setup(
        "callbell",
        FakeCallbell,
        lambda f: {"api_url": f.url, "api_key": f.api_key},
        lambda f: None,
        SendRequest(recipient="+31612345678", text="Hello!"),
        lambda f: ({"api_url": f.url, "api_key": "wrong-token"}, None),
    ),
    "meta": Setup(
        "meta",
        FakeMeta,
        lambda f: {
            "api_url": f.url + "/v24.0",
            "api_key": f.api_key,
            "phone_number_id": "106540352242922",
        },
        lambda f: None,
        SendRequest(recipient="+16505551234", text="Hello"),
        lambda f: (
            {
                "api_url": f.url + "/v24.0",
                "api_key": "EAAG-wrong-token",
                "phone_number_id": "106540352242922",
            },
            None,
        ),
    ),
    "twilio": Setup(
        "twilio",
        FakeTwilio,
        lambda f: {"api_url": f.url, "account_sid": f.account_sid, "from": "+15017122661"},
        lambda f: f.token,
        SendRequest(recipient="+15558675310", text="Join Earth's mightiest heroes."),
        lambda f: (
            {"api_url": f.url, "account_sid": f.account_sid, "from": "+15017122661"},
            "wrong-token",
        ),
    ),
    "infobip": Setup(
        "infobip",
        FakeInfobip,
        lambda f: {"api_url": f.url, "api_key": f.api_key, "from": "InfoSMS"},
        lambda f: None,
        SendRequest(recipient="+41793026727", text="This is a sample message"),
        lambda f: ({"api_url": f.url, "api_key": "wrong-key", "from": "InfoSMS"}, None),
    ),
}


def sender_for(setup: Setup, fake: Any, http: httpx.Client, **kwargs: Any) -> Sender:
    return make_sender(
        setup.provider,
        config(setup.options(fake), secret=setup.secret(fake), **kwargs),
        http,
    )


def shape_problems(sent: Any, documented: Any, where: str = "$") -> list[str]:
    """Where `sent` uses a field the documented example does not have, or another JSON type
    (an example's list item stands for every item)."""
    if isinstance(sent, dict):
        if not isinstance(documented, dict):
            return [f"{where} is an object; documented: {type(documented).__name__}"]
        problems = []
        for key, value in sent.items():
            if key not in documented:
                problems.append(f"{where}.{key} is not a documented field")
            else:
                problems += shape_problems(value, documented[key], f"{where}.{key}")
        return problems
    if isinstance(sent, list):
        if not isinstance(documented, list) or not documented:
            return [f"{where} is a list; documented: {documented!r}"]
        return [
            p
            for i, item in enumerate(sent)
            for p in shape_problems(item, documented[0], f"{where}[{i}]")
        ]
    if type(sent) is not type(documented):
        return [f"{where} is {type(sent).__name__}; documented: {type(documented).__name__}"]
    return []
