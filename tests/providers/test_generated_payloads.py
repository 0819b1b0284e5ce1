"""Generated webhooks for every provider: bodies built from each provider's documented shape
with arbitrary ids, statuses and extra fields parse to the expected events; the same bodies
damaged (cut short, fields of the wrong type, keys dropped) give PayloadError or events, never
any other exception."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.providers.fuzzing import json_values, parsed_or_payload_error
from tidings.domain.errors import PayloadError
from tidings.domain.events import BadItem, EventKind, Ignored, NormalizedEvent
from tidings.providers.registry import PROVIDERS

ids = st.text(
    st.characters(min_codepoint=48, max_codepoint=122, categories=["L", "N"]),
    min_size=1,
    max_size=40,
)
extras = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in {"id", "status"}),
    st.one_of(st.none(), st.integers(), st.text(max_size=10)),
    max_size=3,
)

EVOLUTION = {
    "PENDING": EventKind.QUEUED,
    "SERVER_ACK": EventKind.SENT,
    "DELIVERY_ACK": EventKind.DELIVERED,
    "READ": EventKind.READ,
    "PLAYED": EventKind.PLAYED,
    "ERROR": EventKind.FAILED,
}
CALLBELL = {
    "enqueued": EventKind.QUEUED,
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "read": EventKind.READ,
    "failed": EventKind.FAILED,
    "mismatch": EventKind.MISMATCH,
}
INFOBIP = {
    "PENDING": EventKind.QUEUED,
    "DELIVERED": EventKind.DELIVERED,
    "UNDELIVERABLE": EventKind.FAILED,
    "EXPIRED": EventKind.FAILED,
    "REJECTED": EventKind.FAILED,
}
META = {
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "read": EventKind.READ,
    "failed": EventKind.FAILED,
}
TWILIO = {
    "queued": EventKind.QUEUED,
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "undelivered": EventKind.FAILED,
    "failed": EventKind.FAILED,
}


ANY_JSON = json_values(["event", "data", "payload", "results", "entry", "status", "id"], ["read"])


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_give_payload_error_or_events(provider: str, body: bytes) -> None:
    parsed_or_payload_error(PROVIDERS[provider].parse, body)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@settings(max_examples=150, deadline=None)
@given(value=ANY_JSON)
def test_arbitrary_json_gives_payload_error_or_events(provider: str, value: object) -> None:
    parsed_or_payload_error(PROVIDERS[provider].parse, json.dumps(value).encode())


def evolution(items: list[tuple[str, str]]) -> bytes:
    data = [
        {"keyId": i, "fromMe": True, "status": s, "remoteJid": "5511999990000@s.whatsapp.net"}
        for i, s in items
    ]
    return json.dumps({"event": "messages.update", "instance": "x", "data": data}).encode()


def callbell(item: tuple[str, str], extra: dict[str, Any]) -> bytes:
    payload = {"uuid": item[0], "status": item[1], "metadata": {"k": "v"}, **extra}
    return json.dumps({"event": "message_status_updated", "payload": payload}).encode()


def infobip(items: list[tuple[str, str]]) -> bytes:
    results = [
        {
            "messageId": i,
            "to": "41793026727",
            "doneAt": "2024-07-16T17:26:54.966+0000",
            "status": {"groupName": g, "name": g + "_X"},
        }
        for i, g in items
    ]
    return json.dumps({"results": results}).encode()


def meta(items: list[tuple[str, str]]) -> bytes:
    statuses = [
        {"id": i, "status": s, "timestamp": "1750857391", "recipient_id": "16505551234"}
        for i, s in items
    ]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": "1"},
        "statuses": statuses,
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "w", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()


def twilio(item: tuple[str, str]) -> bytes:
    return urlencode(
        {"MessageSid": item[0], "MessageStatus": item[1], "To": "+15005550006", "AccountSid": "AC1"}
    ).encode()


def events(provider: str, body: bytes) -> list[tuple[str, EventKind]]:
    parsed = PROVIDERS[provider].parse(body, {"content-type": "application/json"})
    assert not any(isinstance(i, (BadItem, Ignored)) for i in parsed), parsed
    return [(e.provider_message_id, e.kind) for e in parsed if isinstance(e, NormalizedEvent)]


def batch(table: dict[str, EventKind]) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(st.tuples(ids, st.sampled_from(sorted(table))), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(items=batch(EVOLUTION))
def test_generated_evolution_bodies_parse(items: list[tuple[str, str]]) -> None:
    assert events("evolution", evolution(items)) == [(i, EVOLUTION[s]) for i, s in items]


@settings(max_examples=60, deadline=None)
@given(item=st.tuples(ids, st.sampled_from(sorted(CALLBELL))), extra=extras)
def test_generated_callbell_bodies_parse(item: tuple[str, str], extra: dict[str, Any]) -> None:
    assert events("callbell", callbell(item, extra)) == [(item[0], CALLBELL[item[1]])]


@settings(max_examples=60, deadline=None)
@given(items=batch(INFOBIP))
def test_generated_infobip_bodies_parse(items: list[tuple[str, str]]) -> None:
    assert events("infobip", infobip(items)) == [(i, INFOBIP[g]) for i, g in items]


@settings(max_examples=60, deadline=None)
@given(items=batch(META))
def test_generated_meta_bodies_parse(items: list[tuple[str, str]]) -> None:
    assert events("meta", meta(items)) == [(i, META[s]) for i, s in items]


@settings(max_examples=60, deadline=None)
@given(item=st.tuples(ids, st.sampled_from(sorted(TWILIO))))
def test_generated_twilio_bodies_parse(item: tuple[str, str]) -> None:
    parsed = PROVIDERS["twilio"].parse(
        twilio(item), {"content-type": "application/x-www-form-urlencoded"}
    )
    assert [(e.provider_message_id, e.kind) for e in parsed if isinstance(e, NormalizedEvent)] == [
        (item[0], TWILIO[item[1]])
    ]


def _damage(document: Any, draw: st.DrawFn) -> Any:
    """Replace one value somewhere in the document by something of another type, or drop it."""
    if isinstance(document, dict) and document:
        key = draw(st.sampled_from(sorted(document)))
        action = draw(st.sampled_from(["drop", "swap", "recurse"]))
        copy = dict(document)
        if action == "drop":
            del copy[key]
        elif action == "swap":
            copy[key] = draw(
                st.one_of(
                    st.none(),
                    st.integers(),
                    st.text(max_size=5),
                    st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                )
            )
        else:
            copy[key] = _damage(copy[key], draw)
        return copy
    if isinstance(document, list) and document:
        index = draw(st.integers(0, len(document) - 1))
        copy = list(document)
        copy[index] = _damage(copy[index], draw)
        return copy
    return draw(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans()))


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    provider = draw(st.sampled_from(["evolution", "callbell", "infobip", "meta"]))
    good = {
        "evolution": lambda: evolution(draw(batch(EVOLUTION))),
        "callbell": lambda: callbell(draw(st.tuples(ids, st.sampled_from(sorted(CALLBELL)))), {}),
        "infobip": lambda: infobip(draw(batch(INFOBIP))),
        "meta": lambda: meta(draw(batch(META))),
    }[provider]()
    if draw(st.booleans()):
        return provider, good[: draw(st.integers(0, len(good) - 1))]  # cut short
    return provider, json.dumps(_damage(json.loads(good), draw)).encode()


@settings(max_examples=300, deadline=None)
@given(case=damaged())
def test_damaged_bodies_give_payload_error_or_events_never_a_crash(case: tuple[str, bytes]) -> None:
    provider, body = case
    outcome: object
    try:
        outcome = PROVIDERS[provider].parse(body, {"content-type": "application/json"})
    except PayloadError as error:
        outcome = error
    if isinstance(outcome, PayloadError):
        assert str(outcome).startswith(provider), "errors name the provider"
    else:
        assert isinstance(outcome, list)
