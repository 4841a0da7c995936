"""Errors the services raise and the API turns into Rancher's error shape.

    ApiError                           status, Norman code, message, fieldName
    ├── NotFoundError                  404  NotFound
    ├── ConflictError                  409  Conflict (a name already taken)
    ├── InvalidInputError              422  InvalidFormat / MissingRequired / InvalidBodyContent
    ├── ActionNotAvailableError        409  ActionNotAvailable (stop a finished run, ...)
    ├── UnauthorizedError              401  Unauthorized
    │   └── SignatureError             401  a webhook delivery not signed with its pipeline's token
    ├── PermissionDeniedError          403  PermissionDenied
    ├── PayloadTooLargeError           413  RequestEntityTooLarge
    ├── UnsupportedMediaTypeError      415  UnsupportedMediaType (neither JSON nor YAML)
    ├── UpstreamError                  424  a forge (or another service we call) failed or refused
    ├── ServiceUnavailableError        503  ServiceUnavailable, with Retry-After
    └── StoreUncertainError            504  StoreUncertain: Prefect lost its answer to a write

Pipeline definition errors (`translator.errors.PipelineSpecError`) become 422
InvalidFormat naming the field. The internal cause of an error is logged, never sent.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error with its place in the API: status, Norman code, message, field."""

    status = 500
    code = "ServerError"

    def __init__(self, message: str, *, field_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field_name = field_name


class NotFoundError(ApiError):
    """The resource does not exist (or is not the caller's to see)."""

    status = 404
    code = "NotFound"


class ConflictError(ApiError):
    """The resource's state does not allow it (a project that holds pipelines, the last
    owner): Norman's Conflict."""

    status = 409
    code = "Conflict"


class NotUniqueError(ApiError):
    """The name (or registry, or role) is taken: Norman's NotUnique, a 422."""

    status = 422
    code = "NotUnique"


class InvalidInputError(ApiError):
    """The request is malformed: a field is missing, of the wrong type or out of range."""

    status = 422
    code = "InvalidFormat"

    def __init__(self, message: str, *, field_name: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message, field_name=field_name)
        if code:
            self.code = code


class ActionNotAvailableError(ApiError):
    """The action (or link) exists but not in the resource's current state: Norman's
    ActionNotAvailable, a 404."""

    status = 404
    code = "ActionNotAvailable"


class UnauthorizedError(ApiError):
    """No valid token."""

    status = 401
    code = "Unauthorized"


class SignatureError(UnauthorizedError):
    """The webhook delivery is not signed with the pipeline's token."""


class PermissionDeniedError(ApiError):
    """The caller may not do this."""

    status = 403
    code = "PermissionDenied"


class PayloadTooLargeError(ApiError):
    """The body is over the size limit."""

    status = 413
    code = "RequestEntityTooLarge"


class UnsupportedMediaTypeError(ApiError):
    """A Content-Type other than JSON or YAML."""

    status = 415
    code = "UnsupportedMediaType"


class UpstreamError(ApiError):
    """A service the facade calls for the request (a forge) failed or refused.

    424 Failed Dependency: the request was fine, what it depends on did not answer it.
    """

    status = 424
    code = "UpstreamError"


class StoreUncertainError(ApiError):
    """Prefect's answer to a write was lost, and it cannot tell yet whether the write was
    made: retrying blindly could make it twice.

    504 Gateway Timeout: look (for example at the executions) before trying again.
    """

    status = 504
    code = "StoreUncertain"


class ServiceUnavailableError(ApiError):
    """The store is busy or unreachable; the request may be retried."""

    status = 503
    code = "ServiceUnavailable"

    def __init__(self, message: str, *, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after
