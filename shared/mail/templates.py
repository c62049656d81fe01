"""The mail templates: one folder per kind of mail, rendered with Jinja2.

Each :class:`~shared.settings.mail.MailKind` has a folder of the same name in
``shared/mail/templates/`` holding ``subject.txt``, ``body.txt`` and
``body.html``; the HTML bodies extend ``layout.html`` and take their code box
and button from ``macros.html``. A deployer overrides any of these files by
putting a file with the same relative path into the folder named by
``AUTH_MAIL_TEMPLATES`` (``password_reset/body.html``, say, or
``layout.html``); every file not there falls back to the built-in one.

Templates see the fields of :class:`MailContext`; the bodies also see
``subject``, the rendered subject line. The filter ``minutes`` spells a number
of minutes (``{{ code_lifetime_minutes|minutes }}`` gives ``10 minutes``).

Rendering is strict: a name the context lacks (a typo) raises
:class:`jinja2.UndefinedError`, and so does printing a value that is not set
(``None``), so optional fields are shown under ``{% if link %}``. HTML
templates are autoescaped, text templates are not.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    UndefinedError,
    select_autoescape,
)

from shared.settings.mail import MailKind

__all__ = ["BUILTIN_TEMPLATES", "MailContext", "RenderedMail", "mask_email", "render_mail"]

#: The folder of the built-in templates.
BUILTIN_TEMPLATES = Path(__file__).resolve().with_name("templates")

#: The context fields each kind of mail cannot do without.
_REQUIRED: dict[MailKind, tuple[str, ...]] = {
    MailKind.PASSWORD_RESET: ("code",),
    MailKind.VERIFY_EMAIL: ("code",),
    MailKind.EMAIL_CHANGE: ("code",),
    MailKind.EMAIL_CHANGED: ("masked_email",),
    MailKind.RECOVERY_CODE_USED: ("recovery_codes_left",),
    MailKind.RECOVERY_CODES_REGENERATED: ("recovery_codes_left",),
}


@dataclass(frozen=True, slots=True)
class MailContext:
    """What a mail's templates may show."""

    #: Who the mail is from (``AUTH_APP_NAME``).
    app_name: str
    #: The address the mail goes to.
    recipient: str
    #: The one-time code (8 digits) of a mail that proves an address.
    code: str | None = None
    #: A page or app link that carries the code, when one is configured.
    link: str | None = None
    #: How long the code is valid.
    code_lifetime_minutes: int = 10
    #: The address an account is moving to (``email_change``, ``email_in_use``).
    new_email: str | None = None
    #: The new address, masked (``n***@example.com``), for the ``email_changed`` notice to the old one.
    masked_email: str | None = None
    #: The password-reset page, when one is configured (``signup_existing`` and the notices).
    reset_link: str | None = None
    #: Unused recovery codes the account has (``recovery_code_used``, ``recovery_codes_regenerated``).
    recovery_codes_left: int | None = None


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """A rendered mail: a one-line subject and the same message as plain text and as HTML."""

    subject: str
    text: str
    html: str


def mask_email(address: str) -> str:
    """Hide an address's local part but its first character: ``nina@example.com`` → ``n***@example.com``.

    :raises ValueError: ``address`` has no ``@``, or nothing before or after it.
    """
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("not an email address")
    return f"{local[0]}***@{domain}"


def render_mail(kind: MailKind, context: MailContext, *, override: Path | None = None) -> RenderedMail:
    """Render the subject and both bodies of one mail.

    The subject is stripped and collapsed to one line (a line break in a
    header would start another header).

    :param override: a folder whose files replace the built-in templates of
        the same relative path (``AUTH_MAIL_TEMPLATES``).
    :raises ValueError: the context lacks what this kind of mail must show
        (a code; the masked new address).
    :raises jinja2.TemplateNotFound: a template file is missing.
    :raises jinja2.TemplateSyntaxError: a template is not valid Jinja.
    :raises jinja2.UndefinedError: a template names a variable the context
        does not have, or prints one that is not set.
    """
    missing = [name for name in _REQUIRED.get(kind, ()) if getattr(context, name) is None]
    if missing:
        raise ValueError(f"a {kind.value} mail needs {', '.join(missing)} in its context")
    environment = _environment(override)
    variables: dict[str, Any] = asdict(context)
    subject = " ".join(environment.get_template(f"{kind.value}/subject.txt").render(variables).split())
    variables["subject"] = subject
    text = environment.get_template(f"{kind.value}/body.txt").render(variables)
    html = environment.get_template(f"{kind.value}/body.html").render(variables)
    return RenderedMail(subject=subject, text=text.strip() + "\n", html=html.strip() + "\n")


@functools.cache
def _environment(override: Path | None) -> Environment:
    """The Jinja2 environment of one override folder (or none), built once per process."""
    loaders = [FileSystemLoader(BUILTIN_TEMPLATES, encoding="utf-8")]
    if override is not None:
        loaders.insert(0, FileSystemLoader(override, encoding="utf-8"))
    environment = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"),
            disabled_extensions=("txt",),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        finalize=_refuse_none,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["minutes"] = _minutes
    return environment


def _refuse_none(value: object) -> object:
    """Every printed value passes here: ``None`` means a template shows a field this mail has not set."""
    if value is None:
        raise UndefinedError("a template printed a value that is not set; show it under {% if ... %}")
    return value


def _minutes(count: int) -> str:
    return "1 minute" if count == 1 else f"{count} minutes"
