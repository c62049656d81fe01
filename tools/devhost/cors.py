"""CORS as ``func start`` configures it from ``local.settings.json`` ``Host.CORS``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: The message of ASP.NET Core's ``CorsPolicyBuilder.Build`` for ``*`` with credentials.
INSECURE_CORS = (
    "The CORS protocol does not allow specifying a wildcard (any) origin and credentials at the same "
    "time. Configure the CORS policy by listing individual origins if credentials needs to be supported."
)


@dataclass(frozen=True)
class CorsPolicy:
    """``app.UseCors(b => b.WithOrigins(origins).AllowAnyHeader().AllowAnyMethod()[.AllowCredentials()])``.

    As ASP.NET Core's ``CorsPolicyBuilder``, ``CorsService`` and ``CorsMiddleware``
    (dotnet/aspnetcore ``src/Middleware/CORS``) apply it: origins are lower-cased
    and compared exactly; ``*`` alone allows any origin (and may not go with
    credentials); a preflight (``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``) is answered 204 before routing, echoing
    the requested method and headers when the origin is allowed; other responses
    get ``Access-Control-Allow-Origin`` (``*`` or the origin) and
    ``Access-Control-Allow-Credentials``; ``Vary: Origin`` when more than one
    origin is listed. An origin not allowed gets no CORS header at all.
    """

    origins: tuple[str, ...]
    credentials: bool = False
    normalized: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalized", tuple(origin.lower() for origin in self.origins))
        if self.any_origin and self.credentials:
            raise ValueError(INSECURE_CORS)

    @property
    def any_origin(self) -> bool:
        return self.normalized == ("*",)

    def _allowed(self, origin: str) -> dict[str, str]:
        if not origin or not (self.any_origin or origin in self.normalized):
            return {}
        headers = {"Access-Control-Allow-Origin": "*" if self.any_origin else origin}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def _vary(self, headers: dict[str, str]) -> dict[str, str]:
        if headers and (self.credentials if self.any_origin else len(self.normalized) > 1):
            headers["Vary"] = "Origin"
        return headers

    def preflight(self, origin: str, method: str, requested_headers: Sequence[str]) -> dict[str, str]:
        """The headers of the 204 answer to a preflight."""
        headers = self._allowed(origin)
        if headers:
            names = [n.strip() for value in requested_headers for n in value.split(",") if n.strip()]
            if names:
                headers["Access-Control-Allow-Headers"] = ",".join(names)
            if method:
                headers["Access-Control-Allow-Methods"] = method
        return self._vary(headers)

    def actual(self, origin: str) -> dict[str, str]:
        """The headers added to the response of a request with an ``Origin``."""
        return self._vary(self._allowed(origin))
