"""HTTP for the function adapters: request bodies in, JSON and problem responses out.

This is the one place where :class:`~shared.errors.ServiceError` becomes HTTP:
an RFC 9457 ``application/problem+json`` body with the error's stable ``code``.
Nothing else reaches the client: unexpected exceptions become a bare 500
``internal_error`` and their details go to the log only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import azure.functions as func

from shared.accounts.service import Session
from shared.accounts.store import Account
from shared.errors import (
    InvalidCode,
    InvalidCredentials,
    InvalidGrant,
    InvalidPasskey,
    InvalidRequest,
    InvalidToken,
    NotFound,
    PasskeyRefused,
    PayloadTooLarge,
    ServiceError,
    SettingError,
    StorageUnavailable,
)
from shared.events import end_invocation, invocation, log_event
from shared.passkeys.account_row import passkey_count
from shared.sessions.devices import reset_user_agent, serving_user_agent

__all__ = [
    "MAX_BODY_BYTES",
    "PROBLEM_TYPE_PREFIX",
    "accepted",
    "document_response",
    "forwarded_for",
    "handles_problems",
    "json_response",
    "no_content",
    "not_found",
    "optional_string_field",
    "problem_response",
    "profile_response",
    "read_json_object",
    "session_body",
    "session_response",
    "sessions_response",
    "string_field",
]

MAX_BODY_BYTES = 16 * 1024
PROBLEM_TYPE_PREFIX = "urn:mobile-auth:problem:"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

Handler = Callable[[func.HttpRequest], func.HttpResponse]


class Entry(Protocol):
    """A function's ``main``: the request, and the invocation context the worker passes."""

    def __call__(self, req: func.HttpRequest, context: func.Context = ...) -> func.HttpResponse: ...


def handles_problems(handler: Handler) -> Entry:
    """Wrap a function's ``main`` so every error leaves as a problem response.

    The wrapper takes the Functions ``context`` (the worker passes it because
    the signature names it) and tags every event of the invocation with its id.

    The worker refuses to load a function whose ``context`` annotation is not a
    type named ``Context`` (``Registry.add_function``: ``Optional[...]`` and
    ``... | None`` are refused), so it is annotated ``func.Context`` exactly. Its
    default ``None`` is for direct calls (tests, tools), where there is no
    invocation; the worker never checks defaults.
    """

    def main(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:  # type: ignore[assignment]
        token = invocation(context.invocation_id if context is not None else None)
        agent = serving_user_agent(req.headers.get("User-Agent"))
        try:
            return handler(req)
        except ServiceError as error:
            _log_problem(error)
            return problem_response(error)
        except Exception:  # noqa: BLE001 - the boundary: a bug becomes a bare 500, its traceback logged
            log_event("internal_error", logging.ERROR, exc_info=True)
            return problem_response(ServiceError())
        finally:
            reset_user_agent(agent)
            end_invocation(token)

    main.__doc__ = handler.__doc__
    main.__module__ = handler.__module__
    return main


def problem_response(error: ServiceError) -> func.HttpResponse:
    """Return the RFC 9457 problem response for ``error``."""
    body = {
        "type": PROBLEM_TYPE_PREFIX + error.code,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        **error.problem_members(),
    }
    return func.HttpResponse(
        json.dumps(body),
        status_code=error.status,
        headers={**_NO_STORE, **error.response_headers()},
        mimetype="application/problem+json",
        charset="utf-8",
    )


def json_response(body: dict[str, Any], *, status_code: int = 200) -> func.HttpResponse:
    """Return a JSON response that no cache may keep."""
    return func.HttpResponse(
        json.dumps(body),
        status_code=status_code,
        headers=dict(_NO_STORE),
        mimetype="application/json",
        charset="utf-8",
    )


def document_response(body: dict[str, Any] | list[Any]) -> func.HttpResponse:
    """Return a public JSON document (the association files): 200, ``application/json``, cacheable."""
    return func.HttpResponse(
        json.dumps(body),
        status_code=200,
        headers={"Cache-Control": "public, max-age=3600"},
        mimetype="application/json",
    )


def no_content() -> func.HttpResponse:
    """Return 204 No Content."""
    return func.HttpResponse(status_code=204, headers=dict(_NO_STORE))


def profile_response(account: Account) -> func.HttpResponse:
    """Return what ``GET /api/me`` shows of an account."""
    return json_response(
        {
            "userId": account.user_id,
            "email": account.email,
            "emailVerified": account.email_verified,
            "createdAt": _iso(account.created_at),
            "mfa": {"totp": account.mfa_totp, "recoveryCodesLeft": account.recovery_codes_left},
            "passkeys": passkey_count(account),
        }
    )


def sessions_response(account: Account, *, current: str | None) -> func.HttpResponse:
    """Return ``GET /api/sessions``: the live sessions, newest first."""
    sessions = sorted(account.live_sessions, key=lambda s: s.created_at, reverse=True)
    return json_response(
        {
            "sessions": [
                {
                    "id": s.id,
                    "createdAt": _iso(s.created_at),
                    "lastSeenAt": _iso(s.last_seen_at),
                    "userAgent": s.user_agent,
                    "current": s.id == current,
                }
                for s in sessions
            ]
        }
    )


def not_found() -> NotFound:
    """The error of a route that names nothing the caller has."""
    return NotFound("No such resource.")


def accepted(message: str) -> func.HttpResponse:
    """Return 202 with a fixed body: the request was taken, whatever it will lead to."""
    return json_response({"status": "accepted", "message": message}, status_code=202)


def session_response(session: Session, *, status_code: int = 200) -> func.HttpResponse:
    """Return the login/register success body.

    ``authenticationToken`` and ``user`` are what the Mobile Apps client SDKs
    read; flat ``userId`` and ``token`` are what clients of the original custom
    API read.
    """
    return json_response(session_body(session), status_code=status_code)


def session_body(session: Session) -> dict[str, Any]:
    """The members of a session response (see :func:`session_response`)."""
    token = session.token
    return {
        "authenticationToken": token.token,
        "user": {"userId": token.user_id, "email": session.email},
        "userId": token.user_id,
        "token": token.token,
        "expiresAt": _iso(token.expires_at),
        # -- short access tokens with refresh tokens (docs/tokens.md)
        "expiresIn": int((token.expires_at - token.issued_at).total_seconds()),
        **({"refreshToken": session.refresh_token} if session.refresh_token else {}),
    }


def read_json_object(req: func.HttpRequest) -> dict[str, Any]:
    """Return the request body as a JSON object.

    :raises PayloadTooLarge: the body is over :data:`MAX_BODY_BYTES`.
    :raises InvalidRequest: the body is not UTF-8 JSON, or not an object.
    """
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body must be at most {MAX_BODY_BYTES} bytes.")
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("The request body must be a JSON object.") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return parsed


def optional_string_field(body: dict[str, Any], name: str) -> str | None:
    """Return the string field ``name`` of ``body``, or ``None`` when it is absent.

    :raises InvalidRequest: the field is present but not a string.
    """
    return string_field(body, name) if name in body else None


def string_field(body: dict[str, Any], name: str, *aliases: str) -> str:
    """Return the string field ``name`` (or the first present alias) of ``body``.

    :raises InvalidRequest: the field is missing, not a string, or not valid Unicode.
    """
    for key in (name, *aliases):
        if key in body:
            value = body[key]
            break
    else:
        raise InvalidRequest(f"The field {name!r} is required.")
    if not isinstance(value, str):
        raise InvalidRequest(f"The field {name!r} must be a string.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"The field {name!r} is not valid Unicode.") from None
    return value


def forwarded_for(req: func.HttpRequest) -> str | None:
    """The request's ``X-Forwarded-For``, where the platform's front end appends the client's address."""
    value: str | None = req.headers.get("X-Forwarded-For")
    return value


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _log_problem(error: ServiceError) -> None:
    if isinstance(error, SettingError):
        log_event("server_misconfigured", logging.ERROR, setting=error.setting, problem=error.problem)
    elif isinstance(error, StorageUnavailable):
        log_event("storage_unavailable", logging.WARNING)
    elif isinstance(error, InvalidToken):
        log_event("token_rejected", logging.WARNING, reason=error.reason)
    elif isinstance(error, InvalidGrant):
        log_event("refresh_token_rejected", logging.WARNING, reason=error.reason)
    elif isinstance(error, InvalidCredentials | InvalidCode | InvalidPasskey | PasskeyRefused):
        pass  # the service logged login_failed, password_check_failed, code_rejected or passkey_refused
    elif error.status >= 500:
        log_event("internal_error", logging.ERROR, code=error.code)
    else:
        log_event("request_refused", code=error.code, status=error.status)
