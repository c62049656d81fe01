"""The one exception tree of the service.

Every error a caller can see is a leaf of :class:`ServiceError`. Each leaf fixes
its HTTP status and its stable problem ``code``; :mod:`shared.http` turns any of
them into an RFC 9457 problem response in one place. Code deep in ``shared``
raises these and never builds HTTP responses itself.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccountDisabled",
    "ConflictError",
    "EmailNotVerified",
    "EmailTaken",
    "InvalidCode",
    "InvalidCredentials",
    "InvalidGrant",
    "InvalidPasskey",
    "InvalidRequest",
    "InvalidToken",
    "MailNotConfigured",
    "MfaAlreadyEnabled",
    "MfaRequired",
    "NotFound",
    "PasskeyExists",
    "PasskeyLimitReached",
    "PasskeyRefused",
    "PayloadTooLarge",
    "ServerMisconfigured",
    "ServiceError",
    "SettingError",
    "StorageUnavailable",
    "TooManyAttempts",
    "WeakPassword",
]


class ServiceError(Exception):
    """Base of every error that maps to a problem response.

    ``detail`` is shown to the client, so it must never contain secrets,
    internal messages or anything a stack trace would.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)

    def response_headers(self) -> dict[str, str]:
        """Extra HTTP headers the response for this error carries."""
        return {}

    def problem_members(self) -> dict[str, str]:
        """Extra members of the problem body (RFC 9457 extension members)."""
        return {}


class InvalidRequest(ServiceError):
    """The request body is not JSON, lacks a field, has a wrong type or a bad value."""

    status = 400
    code = "invalid_request"
    title = "The request is invalid"


class WeakPassword(InvalidRequest):
    """The password breaks the password policy; ``detail`` says which rule."""

    code = "weak_password"
    title = "The password does not meet the password policy"


class InvalidCode(InvalidRequest):
    """A one-time code is wrong, expired, used, replaced, or for another email; one answer for all."""

    code = "invalid_code"
    title = "The code is not valid"

    def __init__(self, reason: str) -> None:
        super().__init__("The code is wrong or no longer valid. Ask for a new one.")
        #: For logs only.
        self.reason = reason


class InvalidPasskey(InvalidRequest):
    """A new passkey's answer does not verify (or answers no live challenge); one answer for all."""

    code = "invalid_passkey"
    title = "The passkey could not be added"

    def __init__(self, reason: str) -> None:
        super().__init__("The passkey's answer was not accepted. Start adding it again.")
        #: For logs only.
        self.reason = reason


class PayloadTooLarge(ServiceError):
    """The request body is larger than the service accepts."""

    status = 413
    code = "payload_too_large"
    title = "The request body is too large"


class InvalidCredentials(ServiceError):
    """Unknown email or wrong password; deliberately indistinguishable."""

    status = 401
    code = "invalid_credentials"
    title = "The email or password is incorrect"


class PasskeyRefused(ServiceError):
    """A passkey sign-in did not verify: unknown passkey, wrong answer, used or expired challenge, ...

    One answer whatever the reason, which is logged (``passkey_refused``).
    """

    status = 401
    code = "passkey_refused"
    title = "The passkey was not accepted"


class InvalidToken(ServiceError):
    """A presented token is malformed, forged, expired or otherwise unacceptable.

    ``reason`` is for logs only; the client always sees the same detail.
    """

    status = 401
    code = "invalid_token"
    title = "The authentication token is missing or invalid"

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def response_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class InvalidGrant(ServiceError):
    """A refresh token is malformed, unknown, spent, or its session ended; one answer for all.

    400 ``invalid_grant``, as OAuth 2.0 answers a bad refresh token (RFC 6749 5.2):
    the app signs the user in again. ``reason`` is for logs only.
    """

    status = 400
    code = "invalid_grant"
    title = "The refresh token is not valid"

    def __init__(self, reason: str) -> None:
        super().__init__("The refresh token is invalid, spent or its session ended. Sign in again.")
        self.reason = reason


class EmailNotVerified(ServiceError):
    """The password was right, but the account's email must be verified first."""

    status = 403
    code = "email_not_verified"
    title = "The email address of this account is not verified yet"


class AccountDisabled(ServiceError):
    """The password was right, but an operator disabled the account."""

    status = 403
    code = "account_disabled"
    title = "This account is disabled"


class NotFound(ServiceError):
    """No such thing for the caller (the same answer whether it does not exist or is another's)."""

    status = 404
    code = "not_found"
    title = "Not found"


class MfaRequired(ServiceError):
    """A second factor is needed: after a right password, or for a route that needs one.

    After a password, ``mfa_token`` is the token of the second step (``mfaToken``
    in the body), as the ``mfa_required`` answer of Auth0's password grant.
    """

    status = 403
    code = "mfa_required"
    title = "A second factor is required"

    def __init__(self, mfa_token: str | None = None) -> None:
        super().__init__(
            "Send a code from the authenticator app (or a recovery code) to /api/login/mfa."
            if mfa_token
            else "This needs a session signed in with a second factor."
        )
        self.mfa_token = mfa_token

    def problem_members(self) -> dict[str, str]:
        return {"mfaToken": self.mfa_token} if self.mfa_token else {}


class TooManyAttempts(ServiceError):
    """Login attempts on this account are refused for a while (lockout or rate limit)."""

    status = 429
    code = "too_many_attempts"
    title = "Too many attempts; try again later"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__()
        self.retry_after_seconds = max(1, retry_after_seconds)

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class ConflictError(ServiceError):
    """Another request changed the same record first (an ETag did not match)."""

    status = 409
    code = "conflict"
    title = "The account was changed by another request; retry"


class MfaAlreadyEnabled(ConflictError):
    """The account has a confirmed authenticator already; disable it first."""

    code = "mfa_already_enabled"
    title = "A second factor is enabled already"


class EmailTaken(ConflictError):
    """An account with this (normalized) email already exists."""

    code = "email_taken"
    title = "An account with this email already exists"


class PasskeyExists(ConflictError):
    """The credential is registered already (to this account or another)."""

    code = "passkey_exists"
    title = "This passkey is registered already"


class PasskeyLimitReached(ConflictError):
    """The account has ``AUTH_MAX_PASSKEYS`` passkeys; remove one first."""

    code = "passkey_limit_reached"
    title = "The account has as many passkeys as it may have"


class StorageUnavailable(ServiceError):
    """Table Storage could not be reached or answered with a server error."""

    status = 503
    code = "storage_unavailable"
    title = "Account storage is temporarily unavailable"
    retry_after_seconds: ClassVar[int] = 5

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class ServerMisconfigured(ServiceError):
    """The service cannot run safely with its current app settings."""

    status = 500
    code = "server_misconfigured"
    title = "The service is not configured correctly"


class MailNotConfigured(ServiceError):
    """The route needs mail, and no mail transport is configured."""

    status = 501
    code = "mail_not_configured"
    title = "This service is not set up to send mail"


class SettingError(ServerMisconfigured):
    """One app setting is missing or invalid; ``setting`` names it (for logs)."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__()
        self.setting = setting
        self.problem = problem

    def __str__(self) -> str:
        return f"app setting {self.setting} {self.problem}"
