"""Send a WhatsApp text or template message through Meta's WhatsApp Cloud API.

`POST {api_url}/{phone_number_id}/messages` with `Authorization: Bearer {api_key}` (the
access token). Text: `{"messaging_product": "whatsapp", "recipient_type": "individual",
"to", "type": "text", "text": {"body"}}`; template: `"type": "template", "template": {"name",
"language": {"code"}, "components": [{"type": "body", "parameters": [...]}]}` with one
`{"type": "text", "text"}` per variable (named ones add `parameter_name`). The campaign and
contact go in `biz_opaque_callback_data` as a JSON object (at most 512 characters), which
Meta echoes in every status webhook and our webhook parser reads back. The answer is
`{"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid...",
"message_status"}]}`; the wamid is the message. `api_url` defaults to the Graph API with a
version (`DEFAULT_API_URL`); set it to move to another version. Sources: Meta's Cloud API
reference ("Messages", "Send messages", "Template messages") and "WhatsApp error codes".

Errors are Graph API errors, `{"error": {"message", "type", "code", "error_data":
{"messaging_product", "details"}, "error_subcode", "fbtrace_id"}}`, mostly with HTTP 400;
Meta asks callers to decide on `code`, not on the HTTP status:
- 0, 3, 10, 190, 200-299: the access token or its permissions (not permanent);
- 4, 80007, 130429, 131048, 131056: throttling (not permanent, try later);
- 1, 2, 131000, 131016, 133004: Meta is having trouble (not permanent);
- 368, 130497, 131031, 131042, 133010: the business account cannot send now (not permanent);
- anything else (131026 undeliverable, 131030 not in the allowed list, 131047 outside the
  24-hour window, 132000/132001 template problems, 100 a bad parameter): permanent for this
  message.

Retries: a synchronous Graph error means Meta did not accept the message, and Meta documents
no idempotency key, so only a connection that never opened, or a 429/503 that came with
`Retry-After`, is tried again; a time-out is an unknown outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from tidings.providers.send import (
    SenderConfig,
    SendError,
    SendFailure,
    SendRequest,
    SendResult,
    callback_fields,
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

__all__ = ["DEFAULT_API_URL", "MetaSender"]

PROVIDER = "meta"
DEFAULT_API_URL = "https://graph.facebook.com/v24.0"

_CALLBACK_MAX = 512

_AUTH = frozenset({0, 3, 10, 190, *range(200, 300)})
_THROTTLED = frozenset({4, 80007, 130429, 131048, 131056})
_META_TROUBLE = frozenset({1, 2, 131000, 131016, 133004})
_ACCOUNT = frozenset({368, 130497, 131031, 131042, 133010})


class MetaSender(HttpSender):
    """Sends from one WhatsApp business phone number; see the module docstring."""

    provider = PROVIDER

    def __init__(self, config: SenderConfig, http: httpx.Client | None) -> None:
        token = config.option("api_key")
        number_id = config.option("phone_number_id")
        missing = [
            text
            for text, value in (
                ("the option api_key (the Cloud API access token)", token),
                ("the option phone_number_id (the sending number's id)", number_id),
            )
            if not value
        ]
        if missing:
            raise SendError(
                f"a meta connection needs {' and '.join(missing)} to send",
                provider=PROVIDER,
                kind=SendFailure.CONFIG,
            )
        assert number_id is not None
        base = (config.option("api_url") or DEFAULT_API_URL).rstrip("/")
        super().__init__(config, http)
        self._url = f"{base}/{quote(number_id, safe='')}/messages"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._endpoint = Endpoint(PROVIDER, frozenset({429, 503}), _refusal)

    def prepare(self, request: SendRequest) -> Call:
        body = self._body(request)
        return Call(self._endpoint, self._url, request.recipient, json=body, headers=self._headers)

    def read(self, call: Call, response: Reply) -> SendResult:
        answer = json_body(response)
        messages = answer.get("messages") if isinstance(answer, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str) or not wamid:
            raise no_id(PROVIDER, response, answer, "messages[0].id")
        assert isinstance(first, dict)
        status = first.get("message_status")
        return SendResult(
            wamid, status if isinstance(status, str) else None, answer, response.status_code
        )

    def _body(self, request: SendRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": _number(request.recipient),
        }
        if request.template is not None:
            if not request.language:
                raise SendError(
                    "a meta template needs its language code (e.g. en_US)",
                    provider=PROVIDER,
                    kind=SendFailure.INVALID,
                    permanent=True,
                )
            template: dict[str, Any] = {
                "name": request.template,
                "language": {"code": request.language},
            }
            parameters = _parameters(request.variables)
            if parameters:
                template["components"] = [{"type": "body", "parameters": parameters}]
            body["type"] = "template"
            body["template"] = template
        else:
            body["type"] = "text"
            body["text"] = {"body": request.text}
        fields = callback_fields(request, self.config)
        if fields:
            opaque = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
            if len(opaque) > _CALLBACK_MAX:
                raise SendError(
                    f"meta carries at most {_CALLBACK_MAX} characters of callback data; the "
                    f"campaign, contact and metadata take {len(opaque)}",
                    provider=PROVIDER,
                    kind=SendFailure.INVALID,
                    permanent=True,
                )
            body["biz_opaque_callback_data"] = opaque
        return body


def _number(recipient: str) -> str:
    """The digits with the country code, as Meta's examples write them (no `+`)."""
    return "".join(c for c in recipient if c.isdigit())


def _parameters(variables: object) -> list[dict[str, str]]:
    if isinstance(variables, Mapping):
        return [
            {"type": "text", "parameter_name": str(k), "text": str(v)} for k, v in variables.items()
        ]
    assert isinstance(variables, list | tuple)
    return [{"type": "text", "text": str(v)} for v in variables]


def _refusal(response: Reply, retry_after: float | None) -> SendError:
    answer = json_body(response)
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        text = response.text[:500] if response.content else None
        return refusal(
            response, provider=PROVIDER, code=None, message=text, retry_after=retry_after
        )
    number = error.get("code")
    code = number if isinstance(number, int) and not isinstance(number, bool) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, str) and details.strip() and details not in (message or ""):
        message = f"{message}: {details}" if message else details
    kind: SendFailure | None
    permanent: bool | None = None
    if code in _AUTH:
        kind = SendFailure.AUTH
    elif code in _THROTTLED:
        kind = SendFailure.RATE_LIMITED
    elif code in _META_TROUBLE or response.status_code >= 500:
        kind = SendFailure.UNAVAILABLE
    elif code in _ACCOUNT:
        kind, permanent = SendFailure.REFUSED, False
    elif code == 100:
        kind = SendFailure.INVALID
    else:
        kind = SendFailure.REFUSED
    return refusal(
        response,
        provider=PROVIDER,
        code=str(code) if code is not None else None,
        message=message,
        retry_after=retry_after,
        kind=kind,
        permanent=permanent,
    )
