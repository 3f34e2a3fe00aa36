"""Domain errors shared by every service.

Domain code raises a :class:`ServiceError` subclass; ``percept.api.errors`` renders it in
the error format of the contract that owns the request path. The status code is a class
attribute so an error survives pickling across Ray actors unchanged.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error with an HTTP meaning. Subclasses set ``status_code``."""

    status_code: int = 400
    title: str = "Bad Request"

    def __init__(
        self,
        detail: Any = None,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail if detail is not None else self.title
        if title is not None:
            self.title = title
        self.headers = headers or {}
        # A stable machine key (e.g. for translations); defaults to the detail text.
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments are not restored by the default exception pickling.
        return (_rebuild, (type(self), self.detail, self.title, self.headers, self.code))


def _rebuild(
    cls: type[ServiceError], detail: Any, title: str, headers: dict[str, str], code: str | None
) -> ServiceError:
    return cls(detail, title=title, headers=headers, code=code)


class BadRequest(ServiceError):
    status_code = 400
    title = "Bad Request"


class Unauthorized(ServiceError):
    status_code = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    title = "Forbidden"


class NotFound(ServiceError):
    status_code = 404
    title = "Not Found"


class NotAcceptable(ServiceError):
    status_code = 406
    title = "Not Acceptable"


class Conflict(ServiceError):
    status_code = 409
    title = "Conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    title = "Payload Too Large"


class Unprocessable(ServiceError):
    status_code = 422
    title = "Unprocessable Entity"


class TooManyRequests(ServiceError):
    status_code = 429
    title = "Too Many Requests"


class ServiceUnavailable(ServiceError):
    status_code = 503
    title = "Service Unavailable"


class WeightsMissing(ServiceUnavailable):
    """A model's weights are not in the models directory: the deployment is unavailable."""

    def __init__(self, model: str, directory: str, hint: str = "", **kwargs: Any) -> None:
        message = f"unavailable: weights for {model} not found in {directory}"
        if hint:
            message = f"{message} ({hint})"
        super().__init__(message, **kwargs)
        self.model = model
        self.directory = directory

    def __reduce__(self) -> tuple[Any, ...]:
        return (ServiceUnavailable, (self.detail,))


def unwrap_remote_error(exc: BaseException) -> BaseException:
    """Return the original exception behind a Ray task/actor error, if there is one."""
    cause = getattr(exc, "cause", None)
    seen = 0
    while cause is not None and seen < 5:
        exc = cause
        cause = getattr(exc, "cause", None)
        seen += 1
    return exc
