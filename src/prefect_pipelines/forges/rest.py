"""A forge reached through its JSON REST API with httpx (Gitea, Bitbucket Cloud): one
request helper that names the forge's refusal, and the mapping of refusals to API errors.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from prefect_pipelines.errors import InvalidInputError, NotFoundError, UpstreamError
from prefect_pipelines.forges.base import TIMEOUT, OAuth2Forge


class Refused(Exception):
    """The forge answered 4xx or 5xx (with its message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class RestForge(OAuth2Forge):
    """An OAuth 2 forge whose API is plain JSON over HTTP."""

    auth_scheme: ClassVar[str] = "Bearer"

    @property
    def api_base(self) -> str:
        """Where the API's paths start."""
        return self.api_url

    @staticmethod
    def error_message(body: Any) -> str:
        """The forge's words for a refusal, from its JSON body."""
        return str(body.get("message") or "no details") if isinstance(body, dict) else "no details"

    def request(self, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call of the API; a refusal raises Refused with the forge's message."""
        with httpx.Client(base_url=self.api_base, timeout=TIMEOUT, headers={
                "Authorization": f"{self.auth_scheme} {token}", "Accept": "application/json"}) as http:
            response = http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                message = self.error_message(response.json())[:300]
            except ValueError:
                message = "no details"
            raise Refused(response.status_code, message)
        return response

    def failure(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, Refused):
            if exc.status == 401:
                return InvalidInputError(f"{self.title} refused the credentials while {what}: {exc.message}")
            if exc.status == 404:
                return NotFoundError(f"{self.title} found nothing while {what} (or the token may not see it)")
            if exc.status in (400, 403, 409, 422):
                return InvalidInputError(f"{self.title} refused {what}: {exc.message}")
            return UpstreamError(f"{self.title} answered {exc.status} while {what}: {exc.message}")
        if isinstance(exc, httpx.HTTPError):
            return self.unreachable(exc, what)
        return exc
