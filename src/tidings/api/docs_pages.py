"""`/docs` (Swagger UI) and `/redoc` served with their scripts and styles from this install,
never from a CDN: tidings often runs where the browser reaching it has no internet, and an
operator's browser should not fetch code from third parties to read this API's description.
The assets are those the `fastapi-offline` package ships (Swagger UI and ReDoc bundles)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "add_docs_pages"]

ASSETS_PATH = "/docs-assets"


def add_docs_pages(app: FastAPI) -> None:
    """Mount the assets and add the two pages (build the app with docs_url=redoc_url=None)."""
    app.mount(
        ASSETS_PATH,
        StaticFiles(packages=[("fastapi_offline", "static")]),
        name="docs-assets",
    )

    def urls(request: Request) -> tuple[str, str]:
        """The OpenAPI document and the assets, behind whatever prefix the app is served at."""
        root = request.scope.get("root_path", "").rstrip("/")
        return f"{root}{app.openapi_url}", f"{root}{ASSETS_PATH}"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        openapi, assets = urls(request)
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            # No badge fetched from the public spec validator.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        openapi, assets = urls(request)
        return get_redoc_html(
            openapi_url=openapi,
            title=f"{app.title} API",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )
