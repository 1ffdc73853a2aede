"""Staff accounts from the command line.

python -m webapp.accounts create USERNAME   (password from a prompt, or one line on stdin)
python -m webapp.accounts list
python -m webapp.accounts delete USERNAME
"""

from __future__ import annotations

import argparse
import getpass
import sys

from procedures_db.db import create_schema, get_engine
from webapp.auth import AccountError, create_account, delete_account, list_accounts


def read_password() -> str:
    """Prompt twice on a terminal; read one line when the password is piped in."""
    stdin = sys.stdin
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Mật khẩu / Password: ")
    if getpass.getpass("Nhập lại / Repeat: ") != password:
        raise AccountError("Hai lần nhập mật khẩu không khớp.")
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webapp.accounts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create", help="create a staff account").add_argument("username")
    commands.add_parser("delete", help="delete a staff account").add_argument("username")
    commands.add_parser("list", help="list staff accounts")
    args = parser.parse_args(argv)

    engine = get_engine()
    create_schema(engine)
    try:
        if args.command == "create":
            name = create_account(args.username, read_password(), engine=engine)
            print(f"Đã tạo tài khoản '{name}'.")
        elif args.command == "delete":
            if not delete_account(args.username, engine=engine):
                raise AccountError(f"Không có tài khoản '{args.username}'.")
            print(f"Đã xóa tài khoản '{args.username}'.")
        else:
            for username, created_at in list_accounts(engine=engine):
                print(f"{username}\t{created_at:%Y-%m-%d %H:%M} UTC")
    except AccountError as error:
        print(f"Lỗi: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
