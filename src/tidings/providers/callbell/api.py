"""Send a WhatsApp message through Callbell.

`POST {api_url}/v1/messages/send` with `Authorization: Bearer {api_key}` and the body
`{"to", "from": "whatsapp", "type": "text", "content": {"text"}}`, plus `channel_uuid` (the
connection's `from` option: the Callbell channel that sends) and `metadata`, which Callbell
returns in every `message_status_updated` webhook: tidings puts the campaign and contact
there, under the connection's `campaign_key` / `contact_ref_key` (at most 10 pairs, keys of
50 and values of 500 characters). A template is `template_uuid` + `optin_contact: true`, its
first variable in `content.text` and all of them in `template_values`. The answer is
`{"message": {"uuid", "status": "enqueued"}}`. Sources: callbellchat/callbell-public-docs,
`docs/api/reference/messages_api/post_send_messages.md` and its curl snippets,
`authorization.md`, `errors.md`, `rate_limits.md`.

Errors are `{"error": "<text>", "code": "<name>"}` (the documented 402
`whatsapp_wallet_depleted_credit`: not permanent, it passes when credit is added); 4xx is
the request's fault, 5xx Callbell's.

Retries: Callbell answers 429 above its rate limit (300 requests a second) without acting
on the request, so a 429 with `Retry-After` is waited out and tried again; Callbell documents
no de-duplication of sends, so nothing that may have been received is sent again.
"""

from __future__ import annotations

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

__all__ = ["DEFAULT_API_URL", "CallbellSender"]

PROVIDER = "callbell"
DEFAULT_API_URL = "https://api.callbell.eu"

_MAX_PAIRS = 10
_MAX_KEY = 50
_MAX_VALUE = 500


class CallbellSender(HttpSender):
    """Sends through one Callbell account; see the module docstring."""

    provider = PROVIDER

    def __init__(self, config: SenderConfig, http: httpx.Client | None) -> None:
        api_key = config.option("api_key")
        if not api_key:
            raise SendError(
                "a callbell connection needs the option api_key (the API token from "
                "Callbell's dashboard) to send",
                provider=PROVIDER,
                kind=SendFailure.CONFIG,
            )
        base = (config.option("api_url") or DEFAULT_API_URL).rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        super().__init__(config, http)
        self._url = f"{base}/messages/send"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._channel = config.option("from")
        self._endpoint = Endpoint(PROVIDER, frozenset({429}), _refusal)

    def prepare(self, request: SendRequest) -> Call:
        body = self._body(request)
        return Call(self._endpoint, self._url, request.recipient, json=body, headers=self._headers)

    def read(self, call: Call, response: Reply) -> SendResult:
        answer = json_body(response)
        message = answer.get("message") if isinstance(answer, dict) else None
        uuid = message.get("uuid") if isinstance(message, dict) else None
        if not isinstance(uuid, str) or not uuid:
            raise no_id(PROVIDER, response, answer, "message.uuid")
        assert isinstance(message, dict)
        status = message.get("status")
        return SendResult(
            uuid, status if isinstance(status, str) else None, answer, response.status_code
        )

    def _body(self, request: SendRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"to": request.recipient.strip(), "from": "whatsapp", "type": "text"}
        if self._channel:
            body["channel_uuid"] = self._channel
        if request.template is not None:
            values = request.positional
            body["content"] = {"text": values[0] if values else ""}
            body["template_uuid"] = request.template
            body["optin_contact"] = True
            if len(values) > 1:
                body["template_values"] = values
        else:
            body["content"] = {"text": request.text}
        metadata = callback_fields(request, self.config)
        if metadata:
            _check_metadata(metadata)
            body["metadata"] = metadata
        return body


def _check_metadata(metadata: dict[str, str]) -> None:
    problem = None
    if len(metadata) > _MAX_PAIRS:
        problem = f"{len(metadata)} metadata pairs (Callbell keeps at most {_MAX_PAIRS})"
    elif any(len(k) > _MAX_KEY for k in metadata):
        problem = f"a metadata key longer than {_MAX_KEY} characters"
    elif any(len(v) > _MAX_VALUE for v in metadata.values()):
        problem = f"a metadata value longer than {_MAX_VALUE} characters"
    if problem:
        raise SendError(
            f"callbell cannot carry {problem}; the campaign and contact take one pair each",
            provider=PROVIDER,
            kind=SendFailure.INVALID,
            permanent=True,
        )


def _refusal(response: Reply, retry_after: float | None) -> SendError:
    answer = json_body(response)
    code: str | None = None
    message: str | None = None
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict):  # tolerated: {"error": {"message", "code"}}
            message = _text(error.get("message"))
            code = _text(error.get("code"))
        else:
            message = _text(error) or _text(answer.get("message"))
        code = _text(answer.get("code")) or code
    elif response.content:
        message = response.text[:500]
    kind = SendFailure.REFUSED if response.status_code == 402 else None
    permanent = False if response.status_code == 402 else None
    return refusal(
        response,
        provider=PROVIDER,
        code=code,
        message=message,
        retry_after=retry_after,
        kind=kind,
        permanent=permanent,
    )


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
