"""Password settings (``AUTH_PASSWORD_*``, ``AUTH_ARGON2_*``): the policy, the hashing cost, their parsing.

:mod:`shared.accounts.passwords` checks and hashes passwords with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import SettingError
from shared.settings.reader import Reader

__all__ = [
    "OWASP_MINIMUMS",
    "Argon2Parameters",
    "PasswordPolicy",
    "argon2_parameters",
    "password_policy",
]

_MAX_PASSWORD_LENGTH_LIMIT = 4096

#: The Argon2id (memory KiB, time cost) pairs of the OWASP Password Storage
#: Cheat Sheet, all with parallelism 1; parameters must reach one of them.
OWASP_MINIMUMS: tuple[tuple[int, int], ...] = (
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
)


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    """Argon2id cost parameters (app settings ``AUTH_ARGON2_*``)."""

    memory_kib: int = 19_456
    time_cost: int = 2
    parallelism: int = 1

    def meets_owasp_minimum(self) -> bool:
        """Whether these parameters are at least as strong as an OWASP recommendation."""
        return self.parallelism >= 1 and any(
            self.memory_kib >= memory and self.time_cost >= time for memory, time in OWASP_MINIMUMS
        )


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Length bounds of accepted passwords (code points after NFKC) and the context-specific words.

    ``context_words`` (``AUTH_PASSWORD_CONTEXT_WORDS``) are words specific to the
    service, such as the app's or the company's name; no password may contain
    one, nor the local part of the account's own email.
    """

    min_length: int = 8
    max_length: int = 256
    context_words: tuple[str, ...] = ()


def password_policy(reader: Reader) -> PasswordPolicy:
    """``AUTH_PASSWORD_MIN_LENGTH``, ``AUTH_PASSWORD_MAX_LENGTH``, ``AUTH_PASSWORD_CONTEXT_WORDS``."""
    minimum = reader.integer("AUTH_PASSWORD_MIN_LENGTH", default=8, minimum=8)
    maximum = reader.integer(
        "AUTH_PASSWORD_MAX_LENGTH", default=256, minimum=minimum, maximum=_MAX_PASSWORD_LENGTH_LIMIT
    )
    words = tuple(reader.listed("AUTH_PASSWORD_CONTEXT_WORDS"))
    return PasswordPolicy(min_length=minimum, max_length=maximum, context_words=words)


def argon2_parameters(reader: Reader) -> Argon2Parameters:
    """``AUTH_ARGON2_*``, refused below the OWASP minimum."""
    parameters = Argon2Parameters(
        memory_kib=reader.integer("AUTH_ARGON2_MEMORY_KIB", default=19_456, minimum=7_168),
        time_cost=reader.integer("AUTH_ARGON2_TIME_COST", default=2, minimum=1),
        parallelism=reader.integer("AUTH_ARGON2_PARALLELISM", default=1, minimum=1),
    )
    if not parameters.meets_owasp_minimum():
        raise SettingError("AUTH_ARGON2_MEMORY_KIB", "and AUTH_ARGON2_TIME_COST are below the OWASP minimum")
    return parameters
