"""The /v3 facade application."""

from __future__ import annotations

from fastapi import FastAPI

from prefect_pipelines import __version__


def create_app() -> FastAPI:
    """Build the facade: every /v3 route, the webhook receiver and the error handlers."""
    app = FastAPI(
        title="prefect-pipelines",
        version=__version__,
        description="Rancher-2-style pipelines (/v3) served from Prefect.",
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v3", summary="The API root")
    async def root() -> dict[str, object]:
        """The API root, with a link per collection."""
        return {"type": "apiRoot", "id": "v3", "links": {"self": "/v3"}}

    return app
