"""Dashboard fixtures: a running app with a user, and an HTTP client logged in as that user."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import RunningApp
from tidings import user_admin

EMAIL = "ana@example.com"
PASSWORD = "correct horse battery"


def login_form_token(client: httpx.Client) -> str:
    page = client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def log_in(client: httpx.Client, email: str = EMAIL, password: str = PASSWORD) -> httpx.Response:
    token = login_form_token(client)
    return client.post(
        "/login", data={"csrf": token, "email": email, "password": password, "next": "/"}
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Dashboard:
    """The running app, and a browser-like client logged in to its dashboard."""

    app: RunningApp
    client: httpx.Client
    csrf: str

    def page(self, path: str) -> httpx.Response:
        return self.client.get(path, headers={"accept": "text/html"})

    def post(self, path: str, **fields: str) -> httpx.Response:
        return self.client.post(path, data={"csrf": self.csrf, **fields})


@pytest.fixture
def dashboard(running_app: RunningApp) -> Iterator[Dashboard]:
    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    with httpx.Client(base_url=running_app.base_url, timeout=10) as client:
        answer = log_in(client)
        assert answer.status_code == 303, answer.text
        home = client.get("/")
        assert home.status_code == 200
        yield Dashboard(running_app, client, csrf_of(home.text))
