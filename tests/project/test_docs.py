"""The documentation: every setting and route documented, every link between pages working on GitHub."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from tools.emulators.azurite import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
API = DOCS / "api.md"
PAGES = (PROJECT_ROOT / "README.md", *sorted(DOCS.glob("*.md")))

#: What a setting's name looks like: the service's own, and the Functions host's it reads.
SETTING = re.compile(r"(AUTH|ACCOUNTS)_[A-Z0-9_]+|AzureWebJobsStorage(__\w+)?|WEBSITE_[A-Z_]+")
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text outside fenced code blocks, where a ``#`` line is no heading and ``[x](y)`` no link."""
    return FENCE.sub("", text)


def settings_read_by_the_code() -> set[str]:
    """Each setting named by a string in ``shared/`` or a ``function.json``, or cleared by the tests."""
    names: set[str] = set()
    for path in (PROJECT_ROOT / "shared").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and SETTING.fullmatch(value):
                names.add(value)
    for path in PROJECT_ROOT.glob("*/function.json"):
        names.update(re.findall(r"%(\w+)%", path.read_text()))
    conftest = ast.parse((PROJECT_ROOT / "tests" / "conftest.py").read_text())
    for node in conftest.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "APP_SETTINGS" for target in node.targets
        ):
            names.update(ast.literal_eval(node.value))
    return names


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table row in ``text`` (header and separator rows included)."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in prose(text).splitlines()
        if line.lstrip().startswith("|")
    ]


def documented_settings(text: str) -> set[str]:
    """The settings a page documents: those named in the first cell of a table row."""
    return {
        name
        for row in table_rows(text)
        for name in re.findall(r"`([^`]+)`", row[0])
        if SETTING.fullmatch(name)
    }


def test_the_code_reads_settings() -> None:
    """The scan finds what settings.py reads, so an empty result cannot pass the tests below."""
    names = settings_read_by_the_code()
    assert {"AUTH_SIGNING_KEY", "ACCOUNTS_TABLE", "AUTH_MAIL_QUEUE", "AUTH_CLEANUP_SCHEDULE"} <= names


def test_every_setting_is_on_the_configuration_page() -> None:
    """The service's own settings each head a row of a settings table; the host's are named on the page."""
    text = CONFIGURATION.read_text()
    in_rows = documented_settings(text)
    missing = {
        name
        for name in settings_read_by_the_code()
        if name not in in_rows
        and (name.startswith(("AUTH_", "ACCOUNTS_")) or not re.search(rf"\b{name}\b", prose(text)))
    }
    assert not missing, f"not documented in docs/configuration.md: {sorted(missing)}"


def test_settings_are_documented_once() -> None:
    """No setting of the service's has a row of its own twice, on the configuration page or anywhere else."""
    read = settings_read_by_the_code()
    rows = [
        (page.name, name)
        for page in PAGES
        for row in table_rows(page.read_text())
        for name in re.findall(r"`([^`]+)`", row[0])
        if name in read
    ]
    elsewhere = sorted({f"{page}: {name}" for page, name in rows if page != CONFIGURATION.name})
    assert not elsewhere, "settings documented outside docs/configuration.md"
    names = [name for _, name in rows]
    assert len(names) == len(set(names)), "a setting has two rows on docs/configuration.md"


def function_operations() -> set[str]:
    """``METHOD /api/route`` of every HTTP-triggered function; an optional ``{id?}`` gives both paths."""
    operations = set()
    for config_path in PROJECT_ROOT.glob("*/function.json"):
        for binding in json.loads(config_path.read_text())["bindings"]:
            if binding["type"] != "httpTrigger":
                continue
            route = binding.get("route") or config_path.parent.name
            optional = re.fullmatch(r"(.*)/\{(\w+)\?\}", route)
            paths = {route} if optional is None else {optional[1], f"{optional[1]}/{{{optional[2]}}}"}
            operations |= {f"{method.upper()} /{path}" for method in binding["methods"] for path in paths}
    return operations


def spec_operations() -> set[str]:
    document = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text())
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    }


def test_every_route_is_on_the_api_page() -> None:
    """Each operation of a function.json or openapi.yaml is written as `METHOD /api/route` on docs/api.md."""
    operations = function_operations() | spec_operations()
    assert "POST /api/login" in operations
    text = API.read_text()
    missing = sorted(operation for operation in operations if f"`{operation}`" not in text)
    assert not missing, f"not documented in docs/api.md: {missing}"


def test_every_problem_code_is_on_the_api_page() -> None:
    """Each problem code of openapi.yaml (the exception tree, per test_api_spec) has a row on docs/api.md."""
    document = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text())
    codes = set(document["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    in_rows = {cell.strip("`") for row in table_rows(API.read_text()) if len(row) > 1 for cell in row[1:2]}
    assert not codes - in_rows, f"problem codes without a row on docs/api.md: {sorted(codes - in_rows)}"


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(prose(page.read_text())):
        anchor = github_anchor(match[2])
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    text = INLINE_CODE.sub("", prose(page.read_text()))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) and not target.startswith("//")
    ]


def test_anchors_follow_github() -> None:
    """The anchor rule as GitHub applies it, on headings of these pages."""
    assert github_anchor("Migrating from Azure Mobile Services") == "migrating-from-azure-mobile-services"
    local_host = "the-local-host-python--m-toolsdevhost"
    assert github_anchor("The local host (`python -m tools.devhost`)") == local_host
    assert github_anchor("1-2. Overhead per login and register") == "1-2-overhead-per-login-and-register"


def test_the_front_page_is_short_and_maps_every_page() -> None:
    """README is the door: about 300 lines at most, with a link to every page of docs/."""
    readme = PROJECT_ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 300
    linked = {Path(target.split("#")[0]).name for target in relative_links(readme)}
    assert not {page.name for page in DOCS.glob("*.md")} - linked


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(PROJECT_ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    """Each relative link points to a file that exists and, after ``#``, to a heading of it."""
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.relative_to(PROJECT_ROOT)}: {broken}"
