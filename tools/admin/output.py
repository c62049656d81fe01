"""What the operator's tool prints: a line or JSON for a change, fields and tables for people."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["print_fields", "print_json", "print_table", "report", "who", "yes_no"]


def report(args: argparse.Namespace, message: str, **fields: Any) -> None:
    if args.json:
        print_json({name: value for name, value in fields.items() if value is not None})
    else:
        print(message)


def who(user_id: str, email: str) -> str:
    return f"{user_id} ({email})"


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


def print_fields(fields: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name:<{width}}  {value}")


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
