"""Send an SMS or WhatsApp message through Twilio's Messages API.

`POST {api_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, form-encoded, HTTP Basic
auth `account_sid:auth_token` (the connection's secret). Fields: `To`, `From` (the
connection's `from` option; a Messaging Service SID `MG...` goes as `MessagingServiceSid`
instead), `Body` for text, or `ContentSid` (the template) with `ContentVariables` (a JSON
object, `{"1": ...}` for positional variables), and `StatusCallback`: the connection's intake
URL, given by the caller, so Twilio posts every status change of this message to tidings.
With a `whatsapp:` sender, a bare number recipient gets the `whatsapp:` prefix too. The 201
answer is the Message resource: `sid` (SM.../MM...) and `status` (`queued`, or `accepted`
through a Messaging Service). Sources: twilio.com/docs/messaging/api/message-resource,
twilio.com/docs/usage/twilios-response (error format), the error dictionary
(twilio.com/docs/api/errors).

Errors are `{"code", "message", "more_info", "status"}`: 20003 (401) the credentials, 20404
(404) an unknown account, 20429 (429) too many requests; 21212, 21606, 21659 (the `From` is
not usable), 21408 (the destination's region is not enabled) and 10001 (account not active)
are the connection's set-up, not the message; other 4xx refuse the message for good
(21211 invalid `To`, 21610 unsubscribed, 21614 not a mobile number).

Retries: Twilio documents 20429 as "retry according to the Retry-After response header": the
request was not processed, so it is waited out and tried again. Twilio documents no
idempotency key for creating a message, so a time-out is never retried.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
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

__all__ = ["DEFAULT_API_URL", "TwilioSender"]

PROVIDER = "twilio"
DEFAULT_API_URL = "https://api.twilio.com"

_MESSAGING_SERVICE = re.compile(r"MG[0-9a-fA-F]{32}")
_SETUP_CODES = frozenset({10001, 21212, 21408, 21606, 21659})


class TwilioSender(HttpSender):
    """Sends from one Twilio account and sender; see the module docstring."""

    provider = PROVIDER

    def __init__(self, config: SenderConfig, http: httpx.Client | None) -> None:
        sid = config.option("account_sid")
        sender = config.option("from")
        token = (config.secret or "").strip()
        missing = [
            text
            for text, value in (
                ("--option account_sid=AC...", sid),
                ("--secret (the account's auth token)", token),
                ("--option from=NUMBER (a Twilio number, whatsapp:+..., or MG...)", sender),
            )
            if not value
        ]
        if missing:
            raise SendError(
                f"a twilio connection needs {', '.join(missing)} to send",
                provider=PROVIDER,
                kind=SendFailure.CONFIG,
            )
        assert sid is not None and sender is not None
        base = (config.option("api_url") or DEFAULT_API_URL).rstrip("/")
        if not base.endswith("/2010-04-01"):
            base += "/2010-04-01"
        super().__init__(config, http)
        self._url = f"{base}/Accounts/{quote(sid, safe='')}/Messages.json"
        credentials = base64.b64encode(f"{sid}:{token}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {credentials}"}
        self._sender = sender
        self._endpoint = Endpoint(PROVIDER, frozenset({429}), _refusal)

    def prepare(self, request: SendRequest) -> Call:
        form = self._form(request)
        return Call(self._endpoint, self._url, request.recipient, data=form, headers=self._headers)

    def read(self, call: Call, response: Reply) -> SendResult:
        answer = json_body(response)
        sid = answer.get("sid") if isinstance(answer, dict) else None
        if not isinstance(sid, str) or not sid:
            raise no_id(PROVIDER, response, answer, "a message sid")
        assert isinstance(answer, dict)
        status = answer.get("status")
        return SendResult(
            sid, status if isinstance(status, str) else None, answer, response.status_code
        )

    def _form(self, request: SendRequest) -> dict[str, str]:
        to = request.recipient.strip()
        if self._sender.startswith("whatsapp:") and not to.startswith("whatsapp:"):
            to = f"whatsapp:{to}"
        form = {"To": to}
        if _MESSAGING_SERVICE.fullmatch(self._sender):
            form["MessagingServiceSid"] = self._sender
        else:
            form["From"] = self._sender
        if request.template is not None:
            form["ContentSid"] = request.template
            if request.variables:
                form["ContentVariables"] = json.dumps(_content_variables(request.variables))
        else:
            assert request.text is not None
            form["Body"] = request.text
        if self.config.callback_url:
            form["StatusCallback"] = self.config.callback_url
        return form


def _content_variables(variables: object) -> dict[str, str]:
    if isinstance(variables, Mapping):
        return {str(k): str(v) for k, v in variables.items()}
    assert isinstance(variables, list | tuple)
    return {str(i): str(v) for i, v in enumerate(variables, start=1)}


def _refusal(response: Reply, retry_after: float | None) -> SendError:
    answer = json_body(response)
    number = answer.get("code") if isinstance(answer, dict) else None
    code = number if isinstance(number, int) and not isinstance(number, bool) else None
    message = answer.get("message") if isinstance(answer, dict) else None
    if not isinstance(message, str):
        message = response.text[:500] if response.content else None
    kind: SendFailure | None = None
    if code == 20003:
        kind = SendFailure.AUTH
    elif code == 20429:
        kind = SendFailure.RATE_LIMITED
    elif code in _SETUP_CODES or code == 20404:
        kind = SendFailure.CONFIG
    return refusal(
        response,
        provider=PROVIDER,
        code=str(code) if code is not None else None,
        message=message,
        retry_after=retry_after,
        kind=kind,
    )
