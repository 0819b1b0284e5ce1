"""Send a WhatsApp text through an Evolution API instance.

`POST {api_url}/message/sendText/{instance}` with the header `apikey: {api_key}`; the body is
v2's `{"number", "text"}` or v1's `{"number", "textMessage": {"text"}}` (connection option
`api_version`, default v2). The 201 answer names the message in `key.id`, with status
`PENDING`. Evolution is self-hosted, so `api_url` has no default; `api_key` is required (a
send without it is a 401, so it is refused before anything is recorded); `instance` defaults
to the connection name. Sources: doc.evolution-api.com v1/v2 "Send Text"; the error bodies
below from EvolutionAPI/evolution-api's exceptions and its issue tracker (#241, #978, #1247,
#2111, #2308, #2570), where users posted what the API answered.

Errors come as `{"status", "error", "response": {"message": ...}}`, the message a string or a
list:
- `[{"jid", "exists": false, "number"}]` (400): the number is not on WhatsApp: permanent;
- `[["instance requires property \\"text\\""]]` (400): the body failed validation: permanent;
- `["SessionError: No sessions"]`, "Connection Closed" (400): the instance is not connected
  to WhatsApp: not permanent;
- `["PrismaClientKnownRequestError: ..."]` (400): Evolution failed to store the message
  after handing it to WhatsApp (#978: "the message is sent but it answers 400"): outcome
  unknown;
- 401 `Unauthorized` (wrong apikey), 404 (no such instance).

Retries: Evolution documents neither a rate limit nor any de-duplication of sends, so a send
is retried only when its connection never opened, or on a 429 with `Retry-After` (which only
a proxy in front of Evolution sends, and which by definition turned the request away).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from tidings.providers.send import (
    SenderConfig,
    SendError,
    SendFailure,
    SendRequest,
    SendResult,
)
from tidings.providers.send_http import (
    Call,
    Endpoint,
    HttpSender,
    Reply,
    json_body,
    no_id,
    refusal,
)

__all__ = ["EvolutionSender"]

PROVIDER = "evolution"

_NOT_CONNECTED = re.compile(r"SessionError|Connection Closed|not connected|No sessions", re.I)
_STORE_FAILED = re.compile(r"Prisma", re.I)


class EvolutionSender(HttpSender):
    """Sends through one Evolution instance; see the module docstring."""

    provider = PROVIDER

    def __init__(self, config: SenderConfig, http: httpx.Client | None) -> None:
        api_url = config.option("api_url")
        if not api_url:
            raise SendError(
                "an evolution connection needs --option api_url=URL (the address of your "
                "Evolution API server) to send",
                provider=PROVIDER,
                kind=SendFailure.CONFIG,
            )
        version = (config.option("api_version") or "v2").lower()
        if version not in ("v1", "v2"):
            raise SendError(
                f"api_version {version!r} is not one Evolution has: use v1 or v2",
                provider=PROVIDER,
                kind=SendFailure.CONFIG,
            )
        api_key = config.option("api_key")
        if not api_key:  # Evolution answers 401 to every send without it
            raise SendError(
                f"connection {config.connection!r} needs the option api_key (the apikey of "
                "your Evolution API server or of its instance) to send",
                provider=PROVIDER,
                kind=SendFailure.CONFIG,
            )
        super().__init__(config, http)
        self._v1 = version == "v1"
        self._headers = {"apikey": api_key}
        instance = config.option("instance") or config.connection
        segment = quote(instance, safe="")
        self._url = f"{api_url.rstrip('/')}/message/sendText/{segment}"
        self._endpoint = Endpoint(PROVIDER, frozenset({429}), _refusal)

    def prepare(self, request: SendRequest) -> Call:
        if request.text is None:
            raise SendError(
                "evolution sends plain text only: give text instead of a template",
                provider=PROVIDER,
                kind=SendFailure.INVALID,
                permanent=True,
            )
        number = _number(request.recipient)
        body: dict[str, Any] = (
            {"number": number, "textMessage": {"text": request.text}}
            if self._v1
            else {"number": number, "text": request.text}
        )
        return Call(self._endpoint, self._url, request.recipient, json=body, headers=self._headers)

    def read(self, call: Call, response: Reply) -> SendResult:
        answer = json_body(response)
        key = answer.get("key") if isinstance(answer, dict) else None
        message_id = key.get("id") if isinstance(key, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise no_id(PROVIDER, response, answer, "key.id")
        status = answer.get("status") if isinstance(answer, dict) else None
        return SendResult(
            message_id,
            status if isinstance(status, str) else None,
            answer,
            response.status_code,
        )


def _number(recipient: str) -> str:
    """What Evolution takes: the digits of a phone number with its country code, no `+`
    (its examples); a JID (`...@s.whatsapp.net`, `...@g.us`) as it is."""
    text = recipient.strip()
    if "@" in text:
        return text
    return "".join(c for c in text if c.isdigit())


def _refusal(response: Reply, retry_after: float | None) -> SendError:
    answer = json_body(response)
    inner = answer.get("response") if isinstance(answer, dict) else None
    raw_message = inner.get("message") if isinstance(inner, dict) else None
    if raw_message is None and isinstance(answer, dict):
        raw_message = answer.get("message")
    texts = list(_texts(raw_message))
    missing = [item for item in _items(raw_message) if item.get("exists") is False]
    if missing:
        who = ", ".join(str(m.get("jid") or m.get("number") or "?") for m in missing)
        return refusal(
            response,
            provider=PROVIDER,
            code="not_on_whatsapp",
            message=f"the number is not on WhatsApp ({who})",
            retry_after=retry_after,
            kind=SendFailure.REFUSED,
            permanent=True,
        )
    message = "; ".join(texts) or (answer.get("error") if isinstance(answer, dict) else None)
    error_name = answer.get("error") if isinstance(answer, dict) else None
    code = error_name if isinstance(error_name, str) and error_name else None
    if response.status_code == 400 and any(_STORE_FAILED.search(t) for t in texts):
        return SendError(
            "evolution answered HTTP 400 with a database error after taking the message; "
            "it may have been sent",
            provider=PROVIDER,
            kind=SendFailure.BAD_ANSWER,
            http_status=400,
            code=code,
            provider_message=str(message)[:500] if message else None,
            outcome_unknown=True,
            raw=answer,
        )
    if response.status_code == 400 and any(_NOT_CONNECTED.search(t) for t in texts):
        return refusal(
            response,
            provider=PROVIDER,
            code=code,
            message=f"the instance is not connected to WhatsApp: {message}",
            retry_after=retry_after,
            kind=SendFailure.UNAVAILABLE,
        )
    kind = SendFailure.INVALID if response.status_code in (400, 422) else None
    return refusal(
        response,
        provider=PROVIDER,
        code=code,
        message=str(message) if message else None,
        retry_after=retry_after,
        kind=kind,
    )


def _texts(value: object) -> list[str]:
    """Every string in Evolution's `message` (a string, a list, or a list of lists)."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


def _items(value: object) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for entry in value for item in _items(entry)]
    return []
