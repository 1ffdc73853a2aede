"""`python -m procedures_db import|search|show|stats` (the forms are an interface: keep them)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from procedures_db.db import create_schema, get_engine
from procedures_db.settings import get_settings


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m procedures_db")
    commands = parser.add_subparsers(dest="command", required=True)

    imp = commands.add_parser("import", help="import procedure files (format detected per file)")
    imp.add_argument("paths", nargs="*", type=Path, help="files or folders (default: data dir)")
    imp.add_argument("--overlay", type=Path, help="province overlay CSV (online level, URL)")

    find = commands.add_parser("search", help="search procedures ('-' reads queries from stdin)")
    find.add_argument("query")
    find.add_argument("--limit", type=int, default=10)
    find.add_argument("--json", action="store_true")

    show = commands.add_parser("show", help="everything known about one procedure")
    show.add_argument("code")
    show.add_argument("--json", action="store_true")

    commands.add_parser("stats", help="what the database holds")
    return parser


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _cmd_import(args: argparse.Namespace) -> int:
    from procedures_db.importers import run_import

    settings = get_settings()
    paths = args.paths or [settings.data_dir]
    overlay = args.overlay or settings.overlay_csv
    report = run_import(paths, overlay=overlay, engine=get_engine())
    print("\n".join(report.summary_lines()))
    return 0 if report.files_read else 1


def _print_hits(hits: list, as_json: bool) -> None:
    if as_json:
        print(_dump([hit.to_dict() for hit in hits]), flush=True)
        return
    if not hits:
        print("Không tìm thấy thủ tục phù hợp.")
    for hit in hits:
        print(f"{hit.score:5.3f}  {hit.code:<10} {hit.name}  [{', '.join(hit.levels)}]")


def _cmd_search(args: argparse.Namespace) -> int:
    from procedures_db.resolver import ModelMissing

    if args.limit < 1:
        print("--limit must be at least 1", file=sys.stderr)
        return 2
    try:
        return _search(args)
    except ModelMissing as error:
        print(error, file=sys.stderr)
        return 2


def _search(args: argparse.Namespace) -> int:
    from procedures_db.search import search

    if args.query != "-":
        _print_hits(search(args.query, limit=args.limit), args.json)
        return 0
    if not args.json:
        print("reading queries from stdin needs --json", file=sys.stderr)
        return 2
    for line in sys.stdin:
        _print_hits(search(line.strip(), limit=args.limit) if line.strip() else [], True)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from procedures_db.answers.text import procedure_text
    from procedures_db.profile import load_profile_or_default
    from procedures_db.queries import get_procedure

    details = get_procedure(args.code)
    if details is None:
        print(f"Không có thủ tục mã {args.code}", file=sys.stderr)
        return 1
    text = None if args.json else procedure_text(details, load_profile_or_default())
    print(_dump(details.to_dict()) if args.json else text)
    return 0


def _cmd_stats(_args: argparse.Namespace) -> int:
    from procedures_db.queries import database_stats

    for key, value in database_stats().items():
        print(f"{key}: {value}")
    return 0


COMMANDS = {"import": _cmd_import, "search": _cmd_search, "show": _cmd_show, "stats": _cmd_stats}


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    create_schema(get_engine())
    return COMMANDS[args.command](args)
