"""The mail templates: every kind renders, codes stand alone, HTML escapes, overrides fall back."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import UndefinedError

from shared.mail.templates import BUILTIN_TEMPLATES, MailContext, RenderedMail, mask_email, render_mail
from shared.settings.mail import MailKind

APP = "Birdwatch"
CODE = "04817392"
LINK = "https://auth.example.com/api/password/reset#email=nina%40example.com&code=04817392"
RESET_LINK = "https://auth.example.com/api/password/reset#email=nina%40example.com"
CODE_KINDS = (MailKind.PASSWORD_RESET, MailKind.VERIFY_EMAIL, MailKind.EMAIL_CHANGE)

#: What each mail tells a reader who did not ask for it.
IF_NOT_YOU = {
    MailKind.PASSWORD_RESET: "If it wasn't you, ignore this mail: your password is unchanged.",
    MailKind.VERIFY_EMAIL: f"If you didn't sign up for {APP}, ignore this mail",
    MailKind.EMAIL_CHANGE: "If it wasn't you, ignore this mail: no account will use this address.",
    MailKind.EMAIL_IN_USE: "If it wasn't you, ignore this mail",
    MailKind.SIGNUP_EXISTING: "If it wasn't you, ignore this mail: your account is unchanged.",
    MailKind.PASSWORD_CHANGED: "If it wasn't you, reset your password in the app at once",
    MailKind.EMAIL_CHANGED: f"If this was not you, contact the {APP} support at once",
    MailKind.MFA_DISABLED: "If it wasn't you, someone knows your password",
    MailKind.RECOVERY_CODE_USED: "If it wasn't you, someone knows your password and has one of your",
    MailKind.RECOVERY_CODES_REGENERATED: "If it wasn't you, someone knows your password",
    MailKind.PASSKEY_ADDED: "If it wasn't you, someone has access to your account",
    MailKind.PASSKEY_REMOVED: "If it wasn't you, someone knows your password or has your phone",
}


def context_for(kind: MailKind, **changes: object) -> MailContext:
    """A context as the courier builds it for ``kind``."""
    fields: dict[str, object] = {"app_name": APP, "recipient": "nina@example.com", "reset_link": RESET_LINK}
    if kind in CODE_KINDS:
        fields.update(code=CODE, link=LINK, code_lifetime_minutes=15)
    if kind in (MailKind.EMAIL_CHANGE, MailKind.EMAIL_IN_USE):
        fields.update(recipient="nina.new@example.org", new_email="nina.new@example.org")
    if kind is MailKind.EMAIL_CHANGED:
        fields.update(new_email="nina.new@example.org", masked_email="n***@example.org")
    if kind in (MailKind.RECOVERY_CODE_USED, MailKind.RECOVERY_CODES_REGENERATED):
        fields.update(recovery_codes_left=7)
    fields.update(changes)
    return MailContext(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(MailKind))
def test_every_kind_renders_from_its_folder(kind: MailKind) -> None:
    """Each kind has its three files and renders a mail that names the app, the address and a way out."""
    assert {path.name for path in (BUILTIN_TEMPLATES / kind.value).iterdir()} == {
        "subject.txt",
        "body.txt",
        "body.html",
    }
    context = context_for(kind)
    mail = render_mail(kind, context)
    assert isinstance(mail, RenderedMail)
    assert APP in mail.subject
    for body in (mail.text, mail.html):
        assert APP in body
        assert context.recipient in body
        assert "None" not in body
    assert IF_NOT_YOU[kind] in mail.text
    assert IF_NOT_YOU[kind] in mail.html
    assert mail.html.startswith("<!DOCTYPE html>")
    assert f"<title>{mail.subject}</title>" in mail.html
    assert mail.text.endswith("\n")
    assert not mail.text.endswith("\n\n")


@pytest.mark.parametrize("kind", CODE_KINDS)
def test_code_stands_on_a_line_of_its_own(kind: MailKind) -> None:
    """The text part has a line that is just the 8 digits (for one-time-code autofill), and says how long."""
    mail = render_mail(kind, context_for(kind))
    assert CODE in mail.text.splitlines()
    assert mail.text.count(CODE) == 1 + mail.text.count(LINK)
    assert "valid for 15 minutes" in mail.text
    assert LINK in mail.text.splitlines()
    assert f">{CODE}</p>" in mail.html
    assert 'href="' + LINK.replace("&", "&amp;") + '"' in mail.html


@pytest.mark.parametrize("kind", CODE_KINDS)
def test_link_is_optional(kind: MailKind) -> None:
    """Without a configured link the mail still carries the code, and no empty link text."""
    mail = render_mail(kind, context_for(kind, link=None, code_lifetime_minutes=1))
    assert CODE in mail.text.splitlines()
    assert "valid for 1 minute " in mail.text
    assert "open this link" not in mail.text
    assert "href" not in mail.html
    assert "\n\n\n" not in mail.text


@pytest.mark.parametrize("kind", [MailKind.SIGNUP_EXISTING, MailKind.EMAIL_IN_USE, MailKind.PASSWORD_CHANGED])
def test_reset_link_shown_only_when_set(kind: MailKind) -> None:
    """The password-reset page is pointed to when configured, and left out cleanly when not."""
    with_link = render_mail(kind, context_for(kind))
    assert RESET_LINK in with_link.text.splitlines()
    assert RESET_LINK in with_link.html
    without = render_mail(kind, context_for(kind, reset_link=None))
    assert "Reset the password here" not in without.text
    assert "href" not in without.html
    assert "\n\n\n" not in without.text


def test_notices_carry_no_code() -> None:
    """The two notices render without any code; the email-changed one shows only the masked new address."""
    for kind in (MailKind.PASSWORD_CHANGED, MailKind.EMAIL_CHANGED):
        assert kind.is_notice
        render_mail(kind, context_for(kind))
    mail = render_mail(MailKind.EMAIL_CHANGED, context_for(MailKind.EMAIL_CHANGED))
    assert "changed from nina@example.com to n***@example.org." in mail.text
    assert "nina.new@example.org" not in mail.text + mail.html


@pytest.mark.parametrize("kind", list(MailKind))
def test_html_is_escaped_and_text_is_not(kind: MailKind) -> None:
    """Markup in a value is escaped in the HTML part and left as written in the subject and text part."""
    mail = render_mail(kind, context_for(kind, app_name="<b>Tom & Jerry</b>"))
    assert "<b>Tom & Jerry</b>" in mail.subject
    assert "<b>Tom & Jerry</b>" in mail.text
    assert "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in mail.html
    assert "<b>" not in mail.html


def test_subject_is_one_line(tmp_path: Path) -> None:
    """Line breaks in the subject template or in a value are collapsed: no header can be smuggled in."""
    (tmp_path / "verify_email").mkdir()
    (tmp_path / "verify_email" / "subject.txt").write_text("\n  Welcome to\n{{ app_name }}\r\n\n", "utf-8")
    context = context_for(MailKind.VERIFY_EMAIL, app_name="Acme\r\nBcc: victim@example.com")
    mail = render_mail(MailKind.VERIFY_EMAIL, context, override=tmp_path)
    assert mail.subject == "Welcome to Acme Bcc: victim@example.com"
    for kind in MailKind:
        subject = render_mail(kind, context_for(kind, app_name="A\nB\u2028C")).subject
        assert subject == subject.strip()
        assert len(subject.splitlines()) == 1


def test_override_replaces_one_file_and_the_rest_fall_back(tmp_path: Path) -> None:
    """A file in the override folder wins; the kind's other files and other kinds stay built in."""
    (tmp_path / "password_reset").mkdir()
    (tmp_path / "password_reset" / "body.txt").write_text(
        "Your {{ app_name }} code:\n{{ code }}\n({{ code_lifetime_minutes|minutes }})\n", "utf-8"
    )
    builtin = render_mail(MailKind.PASSWORD_RESET, context_for(MailKind.PASSWORD_RESET))
    mail = render_mail(MailKind.PASSWORD_RESET, context_for(MailKind.PASSWORD_RESET), override=tmp_path)
    assert mail.text == f"Your {APP} code:\n{CODE}\n(15 minutes)\n"
    assert mail.subject == builtin.subject
    assert mail.html == builtin.html
    other = render_mail(MailKind.VERIFY_EMAIL, context_for(MailKind.VERIFY_EMAIL), override=tmp_path)
    assert other == render_mail(MailKind.VERIFY_EMAIL, context_for(MailKind.VERIFY_EMAIL))


def test_override_layout_applies_to_every_html_body(tmp_path: Path) -> None:
    """Overriding the shared layout restyles every HTML body, which keeps its own content."""
    (tmp_path / "layout.html").write_text(
        "<html><body class=brand>{% block content %}{% endblock %}"
        "<footer>{{ app_name }}</footer></body></html>",
        "utf-8",
    )
    for kind in MailKind:
        html = render_mail(kind, context_for(kind, app_name="A&B"), override=tmp_path).html
        assert html.startswith("<html><body class=brand>")
        assert "<footer>A&amp;B</footer>" in html
        assert IF_NOT_YOU[kind].replace(APP, "A&amp;B") in html


def test_missing_variable_raises(tmp_path: Path) -> None:
    """A template naming a variable the context lacks fails loudly instead of rendering a gap."""
    (tmp_path / "password_reset").mkdir()
    (tmp_path / "password_reset" / "body.txt").write_text("Your code: {{ cdoe }}\n", "utf-8")
    with pytest.raises(UndefinedError, match="cdoe"):
        render_mail(MailKind.PASSWORD_RESET, context_for(MailKind.PASSWORD_RESET), override=tmp_path)


def test_printing_an_unset_value_raises(tmp_path: Path) -> None:
    """A template printing an optional field this mail has not set fails instead of showing ``None``."""
    (tmp_path / "verify_email").mkdir()
    (tmp_path / "verify_email" / "body.txt").write_text("{{ code }}\nOpen {{ link }}\n", "utf-8")
    context = context_for(MailKind.VERIFY_EMAIL, link=None)
    with pytest.raises(UndefinedError, match="not set"):
        render_mail(MailKind.VERIFY_EMAIL, context, override=tmp_path)


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        (MailKind.PASSWORD_RESET, {"code": None}),
        (MailKind.VERIFY_EMAIL, {"code": None}),
        (MailKind.EMAIL_CHANGE, {"code": None}),
        (MailKind.EMAIL_CHANGED, {"masked_email": None}),
    ],
)
def test_context_without_what_the_kind_needs_is_refused(kind: MailKind, missing: dict[str, None]) -> None:
    """A code mail without its code, or the email-changed notice without the new address, is a bug."""
    with pytest.raises(ValueError, match=next(iter(missing))):
        render_mail(kind, context_for(kind, **missing))


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("nina@example.com", "n***@example.com"),
        ("N@example.com", "N***@example.com"),
        ("josé.müller@bücher.example", "j***@bücher.example"),
        ('"odd@local"@example.com', '"***@example.com'),
        ("ops+alerts@mail.example.co.uk", "o***@mail.example.co.uk"),
    ],
)
def test_mask_email(address: str, masked: str) -> None:
    """The first character of the local part and the whole domain stay; the rest becomes ``***``."""
    assert mask_email(address) == masked


@pytest.mark.parametrize("address", ["", "nina", "@example.com", "nina@"])
def test_mask_email_refuses_non_addresses(address: str) -> None:
    """Something that is not an address is an error, not a guess."""
    with pytest.raises(ValueError, match="not an email address"):
        mask_email(address)


@pytest.mark.parametrize(
    ("left", "count_text", "advice"),
    [
        (7, "7 codes are left", False),
        (2, "2 codes are left", True),
        (1, "1 code is left", True),
        (0, "0 codes are left", True),
    ],
)
def test_recovery_code_notice_says_how_many_are_left(left: int, count_text: str, advice: bool) -> None:
    """The notice counts the codes left, and with 2 or fewer says how to get a new set."""
    mail = render_mail(
        MailKind.RECOVERY_CODE_USED, context_for(MailKind.RECOVERY_CODE_USED, recovery_codes_left=left)
    )
    for body in (mail.text, mail.html):
        assert count_text in body
        assert ("You are running out of recovery codes" in body) is advice
        assert ("New recovery codes" in body) is advice
