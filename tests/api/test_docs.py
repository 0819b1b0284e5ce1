"""The API's description: the bearer scheme is declared (so /docs can authorize), the intake
routes are documented though FastAPI never serves them, and /docs and /redoc load every asset
from this server, none from the internet."""

from __future__ import annotations

import re

import pytest

from tests.conftest import RunningApp
from tidings.providers.registry import PROVIDERS


def test_the_bearer_scheme_is_declared_and_required_on_v1(running_app: RunningApp) -> None:
    doc = running_app.client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert [(s["type"], s["scheme"]) for s in schemes.values()] == [("http", "bearer")]
    (name,) = schemes
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1/"):
                assert operation["security"] == [{name: []}], path
            else:
                assert "security" not in operation, path


def test_the_intake_routes_are_documented(running_app: RunningApp) -> None:
    doc = running_app.client.get("/openapi.json").json()
    intake = doc["paths"]["/hooks/{provider}/{connection}"]
    assert set(intake) == {"post", "get"}
    assert {"202", "400", "401", "404", "413", "503"} <= set(intake["post"]["responses"])
    assert "text/plain" in intake["get"]["responses"]["200"]["content"]
    provider = next(p for p in intake["post"]["parameters"] if p["name"] == "provider")
    assert set(provider["schema"]["enum"]) == set(PROVIDERS)


def test_the_documented_intake_is_the_real_one(running_app: RunningApp) -> None:
    """The stubs are never reached: /hooks/ still goes to the intake."""
    running_app.add_connection("evolution", "main")
    response = running_app.hook("evolution", "main", '{"event": "messages.update", "data": {}}')
    assert response.status_code == 202 and "receipt" in response.json()
    handshake = running_app.client.get("/hooks/evolution/nope")
    assert handshake.status_code == 404
    assert handshake.json()["error"]["code"] == "unknown_connection"


def _references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(running_app: RunningApp, page: str) -> None:
    response = running_app.client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "://" not in html.replace("http://www.w3.org", "")  # no absolute URL at all
    references = _references(html)
    assert any(r.endswith(".js") for r in references), references
    for reference in references:
        assert reference.startswith("/"), reference
        asset = running_app.client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.content, reference
    assert "/openapi.json" in references
