"""The /v3 facade application: routes, the Prefect client, and one error handler for all."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL
from starlette.exceptions import HTTPException as StarletteHTTPException

from prefect_pipelines import __version__
from prefect_pipelines.api import norman
from prefect_pipelines.api.access import check_routes, enforce
from prefect_pipelines.api.deps import no_nul, refuse_nul_in_parameters, say_no_nul
from prefect_pipelines.api.links import add_links
from prefect_pipelines.api.routes import (
    clusters,
    discovery,
    executions,
    hooks,
    logs,
    notifiers,
    pipelines,
    projects,
    sourcecode,
)
from prefect_pipelines.api.schemas import REQUEST_MODELS, ApiRoot
from prefect_pipelines.errors import ApiError, ServiceUnavailableError
from prefect_pipelines.services.client import pipelines_client
from prefect_pipelines.services.deliveries import Dispatcher
from prefect_pipelines.services.lost_runs import ensure_lost_runs_automation
from prefect_pipelines.services.memo import Recent
from prefect_pipelines.services.notices import Notices
from prefect_pipelines.services.pools import ensure_work_pool
from prefect_pipelines.services.projects import AccessCache, adopt
from prefect_pipelines.services.tokens import TokenCache
from prefect_pipelines.settings import get_settings
from prefect_pipelines.translator import PipelineSpecError
from prefect_pipelines.translator.validation import format_path

_log = logging.getLogger("prefect_pipelines.api")
# How long the webhook receiver trusts a pipeline's token and deployment it read: a
# pipeline deactivated or deleted stops taking deliveries within this time.
RECEIVER_SECONDS = 1.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open one Prefect client for the process; make sure the work pool exists."""
    if not PREFECT_API_URL.value():
        raise RuntimeError("PREFECT_API_URL is not set: the facade needs a Prefect server")
    async with pipelines_client() as client:
        app.state.prefect_client = client
        app.state.tokens = TokenCache(get_settings().token_cache_seconds)
        app.state.access = AccessCache(get_settings().token_cache_seconds)
        try:
            await ensure_work_pool(client, get_settings().work_pool)
        except Exception as exc:  # noqa: BLE001 - the pool is made again on first use
            _log.warning("could not check the work pool: %s", exc)
        try:
            await ensure_lost_runs_automation(client, get_settings().lost_after_seconds)
        except Exception as exc:  # noqa: BLE001 - every worker makes it too
            _log.warning("could not set up lost-run detection: %s", exc)
        try:
            await adopt(client)
        except Exception as exc:  # noqa: BLE001 - the next start (or another facade) adopts
            _log.warning("could not adopt projects made before projects existed: %s", exc)
        app.state.receivers = Recent(RECEIVER_SECONDS)
        app.state.deliveries = Dispatcher(client, get_settings().delivery_sweep_seconds)
        try:
            await app.state.deliveries.start()
        except Exception as exc:  # noqa: BLE001 - its records are still run, by a sweep
            _log.warning("could not take the delivery lease: %s", exc)
        app.state.notices = Notices(client, get_settings(), app.state.deliveries)
        await app.state.notices.start()
        try:
            yield
        finally:
            await app.state.notices.close()
            await app.state.deliveries.close()


def _error(status: int, code: str, message: str, field: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(norman.error_body(status, code, message, field), status_code=status,
                        headers=headers)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    headers = None
    if isinstance(exc, ServiceUnavailableError):
        headers = {"Retry-After": str(exc.retry_after)}
    return _error(exc.status, exc.code, exc.message, exc.field_name, headers)


async def _spec_error(request: Request, exc: PipelineSpecError) -> JSONResponse:
    return _error(422, "InvalidFormat", str(exc), exc.path or None)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [part for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = format_path(loc) or None
    kind = first.get("type", "")
    code = "MissingRequired" if kind == "missing" else "InvalidFormat"
    message = first.get("msg", "invalid input")
    if kind == "missing" and field:
        return _error(422, code, f"{field} is required", field)
    return _error(422, code, f"{field}: {message}" if field else message, field)


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path serves, by the OpenAPI document's paths (each
    route serves one method; Starlette's own 405 names only the first route's)."""
    table = getattr(request.app.state, "methods_by_path", None)
    if table is None:
        table = request.app.state.methods_by_path = [
            (re.compile("/".join("[^/]+" if part.startswith("{") and part.endswith("}")
                                 else re.escape(part) for part in path.split("/"))),
             {method.upper() for method in operations})
            for path, operations in request.app.openapi()["paths"].items()]
    methods: set[str] = set()
    for pattern, served in table:
        if pattern.fullmatch(request.url.path):
            methods |= served
    return sorted(methods | {"OPTIONS"}) if methods else []


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    codes = {404: "NotFound", 405: "MethodNotAllowed", 401: "Unauthorized", 400: "BadRequest"}
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such path: {request.url.path}"
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        if request.method == "OPTIONS":  # what the path serves, for anyone who asks
            return Response(status_code=204, headers=headers)
        message = (f"{request.method} is not served at {request.url.path}: it serves "
                   f"{', '.join(method for method in allowed if method != 'OPTIONS')}")
    return _error(exc.status_code, codes.get(exc.status_code, "ServerError"), message,
                  headers=headers or None)


async def _prefect_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ObjectNotFound):
        return _error(404, "NotFound", "not found")
    status = getattr(getattr(exc, "response", None), "status_code", 0)
    if isinstance(exc, httpx.TransportError) or status in (429, 503) or status >= 500:
        _log.warning("the Prefect API failed: %r", exc)
        return _error(503, "ServiceUnavailable", "the store is busy or unreachable; retry",
                      headers={"Retry-After": "2"})
    _log.error("unexpected answer from the Prefect API: %r", exc)
    return _error(502, "UpstreamError", "the store refused the request")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(500, "ServerError", "internal error")


def create_app() -> FastAPI:
    """Build the facade: every /v3 route and the error handlers."""
    app = FastAPI(
        title="prefect-pipelines",
        version=__version__,
        description="Rancher-2-style pipelines (/v3) served from Prefect. Every route but "
        "/hooks needs `Authorization: Bearer <token>` (prefect-pipelines token create).",
        lifespan=lifespan,
        dependencies=[Depends(no_nul), Depends(enforce)],
    )
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(PipelineSpecError, _spec_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    for error in (ObjectNotFound, PrefectHTTPStatusError, httpx.HTTPError):
        app.add_exception_handler(error, _prefect_error)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(pipelines.router)
    app.include_router(executions.router)
    app.include_router(logs.router)
    app.include_router(clusters.router)
    app.include_router(sourcecode.credentials)
    app.include_router(sourcecode.repositories)
    app.include_router(hooks.router)
    app.include_router(projects.router)
    app.include_router(projects.bindings)
    app.include_router(projects.secrets)
    app.include_router(projects.dockercredentials)
    app.include_router(notifiers.router)
    app.include_router(discovery.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v3", response_model=ApiRoot, summary="The API root")
    async def root(request: Request, response: Response) -> dict[str, Any]:
        """The API root; `X-API-Schemas` names the schemas Rancher's clients load."""
        base = norman.base_url(request)
        response.headers["X-API-Schemas"] = f"{base}/v3/schemas"
        return {"type": "apiRoot", "id": "v3",
                "links": {"self": f"{base}/v3", "schemas": f"{base}/v3/schemas",
                          "projects": f"{base}/v3/projects",
                          "notifiers": f"{base}/v3/notifiers",
                          "sourceCodeCredentials": f"{base}/v3/sourcecodecredentials",
                          "sourceCodeRepositories": f"{base}/v3/sourcecoderepositories"}}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in REQUEST_MODELS.values():
                definition = model.model_json_schema(ref_template="#/components/schemas/{model}",
                                                     by_alias=True)
                say_no_nul(definition)  # what body.refuse_nul holds every body to
                components.update(definition.pop("$defs", {}))
                components[model.__name__] = definition
            add_links(schema)
            refuse_nul_in_parameters(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    check_routes(app)
    return app
