"""Send an SMS or an email through Infobip.

Both with `Authorization: App {api_key}`; a recipient with an `@` gets an email, any other
an SMS.

- SMS: `POST {api_url}/sms/2/text/advanced`, JSON `{"messages": [{"destinations": [{"to",
  "messageId"}], "from", "text", "notifyUrl", "notifyContentType": "application/json",
  "callbackData"}]}`; the answer `{"bulkId", "messages": [{"to", "status": {...},
  "messageId"}]}`.
- Email: `POST {api_url}/email/3/send`, multipart form fields `from`, `to`, `subject`, `text`,
  `messageId`, `notifyUrl`, `notifyContentType`, `callbackData`; the same answer shape.

`notifyUrl` is the connection's intake URL (given by the caller), so the delivery reports
come to tidings; `callbackData` is a JSON object with the campaign and contact under the
connection's `campaign_key` / `contact_ref_key` (what `callback_data.callback_metadata`
reads back), at most 4000 characters. `from` is the connection's `from` option (a sender
name or number; for email an address, which Infobip requires). `api_url` defaults to
`DEFAULT_API_URL`; Infobip recommends the account's own base URL (`https://xxxxx.api.infobip.com`).
Sources: infobip/infobip-api-python-client (`tests/test_sms_api.py`,
`tests/test_email_api.py`, `tests/test_error_processing.py`), Infobip's "Send SMS message",
"Send email", "Response status and error codes" and "Idempotent message sending" pages.

When the request carries an `idempotency_key`, tidings chooses the Infobip `messageId`
itself (a hash of the key), so the id is known before Infobip answers: a time-out still
raises an unknown outcome, but the SendError names the id, the next delivery report settles
it, and with Infobip's idempotency enabled on the account a retry with the same key is
refused by Infobip as a duplicate instead of sent twice.

Errors are `{"requestError": {"serviceException": {"messageId", "text",
"validationErrors"}}}` (`UNAUTHORIZED` 401/403, `BAD_REQUEST` 400, `TOO_MANY_REQUESTS` 429,
`GENERAL_ERROR` 5xx). A 200 answer can still refuse the message: its status group
`REJECTED` (e.g. `REJECTED_DESTINATION`) is a refusal, permanent unless it is about the
account (credits, flooding, routes, a system error).

Retries: a 429 (`TOO_MANY_REQUESTS`) turned the request away, so one with `Retry-After` is
waited out and tried again; nothing that may have been received is re-sent here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

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

__all__ = ["DEFAULT_API_URL", "InfobipSender", "message_id_for"]

PROVIDER = "infobip"
DEFAULT_API_URL = "https://api.infobip.com"

_CALLBACK_MAX = 4000
# REJECTED_* names that are about the account or Infobip, not about this message.
_ACCOUNT_REJECTIONS = ("CREDIT", "PREPAID", "FLOODING", "ROUTE", "SYSTEM", "NETWORK")


def message_id_for(idempotency_key: str) -> str:
    """The Infobip messageId tidings assigns for an idempotency key: always the same for the
    same key, 40 characters ("td" and hex digits)."""
    return "td" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:38]


class InfobipSender(HttpSender):
    """Sends SMS and email through one Infobip account; see the module docstring."""

    provider = PROVIDER

    def __init__(self, config: SenderConfig, http: httpx.Client | None) -> None:
        api_key = config.option("api_key")
        if not api_key:
            raise SendError(
                "an infobip connection needs the option api_key (an Infobip API key) to send",
                provider=PROVIDER,
                kind=SendFailure.CONFIG,
            )
        base = (config.option("api_url") or DEFAULT_API_URL).rstrip("/")
        super().__init__(config, http)
        self._sms_url = f"{base}/sms/2/text/advanced"
        self._email_url = f"{base}/email/3/send"
        self._headers = {"Authorization": f"App {api_key}", "Accept": "application/json"}
        self._sender = config.option("from")
        self._endpoint = Endpoint(PROVIDER, frozenset({429}), _refusal)

    def prepare(self, request: SendRequest) -> Call:
        if request.text is None:
            raise SendError(
                "infobip SMS and email are sent as text: give text instead of a template",
                provider=PROVIDER,
                kind=SendFailure.INVALID,
                permanent=True,
            )
        message_id = message_id_for(request.idempotency_key) if request.idempotency_key else None
        callback = self._callback_data(request)
        if "@" in request.recipient:
            return self._email(request, message_id, callback)
        return self._sms(request, message_id, callback)

    def read(self, call: Call, response: Reply) -> SendResult:
        return _result(response, call.chosen_id)

    def _sms(self, request: SendRequest, message_id: str | None, callback: str | None) -> Call:
        destination: dict[str, str] = {"to": _number(request.recipient)}
        if message_id:
            destination["messageId"] = message_id
        message: dict[str, Any] = {"destinations": [destination]}
        if self._sender:
            message["from"] = self._sender
        message["text"] = request.text
        if self.config.callback_url:
            message["notifyUrl"] = self.config.callback_url
            message["notifyContentType"] = "application/json"
        if callback:
            message["callbackData"] = callback
        return Call(
            self._endpoint,
            self._sms_url,
            request.recipient,
            json={"messages": [message]},
            headers=self._headers,
            chosen_id=message_id,
        )

    def _email(self, request: SendRequest, message_id: str | None, callback: str | None) -> Call:
        if not self._sender:
            raise SendError(
                "an infobip connection needs --option from=ADDRESS (a verified sender "
                "address) to send email",
                provider=PROVIDER,
                kind=SendFailure.CONFIG,
            )
        if not request.subject or not request.subject.strip():
            raise SendError(
                "an email needs a subject",
                provider=PROVIDER,
                kind=SendFailure.INVALID,
                permanent=True,
            )
        assert request.text is not None
        fields: list[tuple[str, str]] = [
            ("from", self._sender),
            ("to", request.recipient.strip()),
            ("subject", request.subject),
            ("text", request.text),
        ]
        if message_id:
            fields.append(("messageId", message_id))
        if self.config.callback_url:
            fields.append(("notifyUrl", self.config.callback_url))
            fields.append(("notifyContentType", "application/json"))
        if callback:
            fields.append(("callbackData", callback))
        # (None, value): a plain form field, so the body is multipart as Infobip requires.
        files = [(name, (None, value)) for name, value in fields]
        return Call(
            self._endpoint,
            self._email_url,
            request.recipient,
            files=files,
            headers=self._headers,
            chosen_id=message_id,
        )

    def _callback_data(self, request: SendRequest) -> str | None:
        fields = callback_fields(request, self.config)
        if not fields:
            return None
        text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        if len(text) > _CALLBACK_MAX:
            raise SendError(
                f"infobip carries at most {_CALLBACK_MAX} characters of callbackData; the "
                f"campaign, contact and metadata take {len(text)}",
                provider=PROVIDER,
                kind=SendFailure.INVALID,
                permanent=True,
            )
        return text


def _number(recipient: str) -> str:
    """The digits with the country code, as Infobip's examples write them (no `+`)."""
    return "".join(c for c in recipient if c.isdigit())


def _result(response: Reply, chosen_id: str | None) -> SendResult:
    answer = json_body(response)
    messages = answer.get("messages") if isinstance(answer, dict) else None
    first = messages[0] if isinstance(messages, list) and messages else None
    message_id = first.get("messageId") if isinstance(first, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise no_id(PROVIDER, response, answer, "messages[0].messageId", chosen_id)
    assert isinstance(first, dict)
    status = first.get("status")
    group = status.get("groupName") if isinstance(status, dict) else None
    name = status.get("name") if isinstance(status, dict) else None
    if group == "REJECTED":
        assert isinstance(status, dict)
        description = status.get("description")
        code = name if isinstance(name, str) else "REJECTED"
        about_account = any(word in code for word in _ACCOUNT_REJECTIONS)
        raise SendError(
            f"infobip rejected the message: {code}: {description or 'no description'}",
            provider=PROVIDER,
            kind=SendFailure.REFUSED,
            http_status=response.status_code,
            code=code,
            provider_message=description if isinstance(description, str) else code,
            permanent=not about_account,
            provider_message_id=message_id,
            raw=answer,
        )
    return SendResult(
        message_id,
        name if isinstance(name, str) else (group if isinstance(group, str) else None),
        answer,
        response.status_code,
    )


def _refusal(response: Reply, retry_after: float | None) -> SendError:
    answer = json_body(response)
    code: str | None = None
    message: str | None = None
    request_error = answer.get("requestError") if isinstance(answer, dict) else None
    service = (
        request_error.get("serviceException") or request_error.get("policyException")
        if isinstance(request_error, dict)
        else None
    )
    if isinstance(service, dict):
        code = _text(service.get("messageId"))
        message = _text(service.get("text"))
        problems = service.get("validationErrors")
        if isinstance(problems, dict) and problems:
            listed = "; ".join(
                f"{field}: {', '.join(map(str, issues)) if isinstance(issues, list) else issues}"
                for field, issues in problems.items()
            )
            message = f"{message} ({listed})" if message else listed
    elif isinstance(answer, dict):  # the newer problem format: {"errorCode", "description"}
        code = _text(answer.get("errorCode"))
        message = _text(answer.get("description"))
    elif response.content:
        message = response.text[:500]
    kind = SendFailure.INVALID if response.status_code == 400 else None
    return refusal(
        response,
        provider=PROVIDER,
        code=code,
        message=message,
        retry_after=retry_after,
        kind=kind,
    )


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
