"""Staff accounts, sessions, CSRF tokens and the failed-login limiter.

Passwords: scrypt with a per-user random salt, compared in constant time. Sessions: a random
token in an HttpOnly SameSite=Strict cookie; the database keeps only its SHA-256, so a leaked
database does not leak live sessions. Sign-out deletes the row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from procedures_db.db import session_scope
from procedures_db.models import StaffAccount, StaffSession

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SESSION_LIFETIME = timedelta(hours=10)  # one working shift, then sign in again
MIN_PASSWORD_LENGTH = 12
# Longer passwords are refused at creation and at sign-in alike, never cut: a password that was
# accepted always signs in.
MAX_PASSWORD_LENGTH = 256
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common_passwords.txt"
# Digits and punctuation people pad a weak password with ("Password1234!").
_PADDING = re.compile(r"^[\W\d_]+|[\W\d_]+$")
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


class AccountError(ValueError):
    """The account cannot be created or changed; the message says why."""


@dataclass(frozen=True)
class StaffIdentity:
    username: str
    csrf_token: str


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verifying against this when the username is unknown keeps the response time the same, so
    # timing does not reveal which usernames exist.
    return hash_password(secrets.token_hex(16))


def normalize_username(username: str) -> str:
    return username.strip().lower()


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and line[0] != "#")


def is_common_password(password: str) -> bool:
    """In the shipped list (also once padding digits/punctuation are removed), only digits and
    punctuation, or one character repeated."""
    lowered = password.strip().lower()
    core = _PADDING.sub("", lowered)
    return not core or len(set(lowered)) == 1 or {lowered, core} & common_passwords() != set()


def password_problem(username: str, password: str) -> str | None:
    """Why `password` is not acceptable for the account `username` (None: it is)."""
    if len(password.strip()) < MIN_PASSWORD_LENGTH:
        return f"Mật khẩu phải có ít nhất {MIN_PASSWORD_LENGTH} ký tự (không tính khoảng trắng)."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Mật khẩu dài tối đa {MAX_PASSWORD_LENGTH} ký tự."
    if normalize_username(username) in password.lower():  # also "Tong.Dai-01!!"
        return "Mật khẩu không được chứa tên đăng nhập."
    if is_common_password(password):
        return "Mật khẩu quá phổ biến, dễ bị đoán. Hãy chọn một cụm từ riêng của bạn."
    return None


def validate_new_account(username: str, password: str) -> str:
    name = normalize_username(username)
    if not USERNAME_PATTERN.match(name):
        raise AccountError(
            "Tên đăng nhập: 3-64 ký tự, chữ thường không dấu, số, dấu chấm, gạch ngang/dưới."
        )
    problem = password_problem(name, password)
    if problem:
        raise AccountError(problem)
    return name


def create_account(username: str, password: str, *, engine: Engine) -> str:
    name = validate_new_account(username, password)
    with session_scope(engine) as session:
        exists = session.execute(select(StaffAccount.id).where(StaffAccount.username == name))
        if exists.first() is not None:
            raise AccountError(f"Tài khoản '{name}' đã tồn tại.")
        session.add(StaffAccount(username=name, password_hash=hash_password(password)))
    return name


def list_accounts(*, engine: Engine) -> list[tuple[str, datetime]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(StaffAccount.username, StaffAccount.created_at).order_by(StaffAccount.username)
        )
        return [(row.username, row.created_at) for row in rows]


def delete_account(username: str, *, engine: Engine) -> bool:
    with session_scope(engine) as session:
        result = session.execute(
            delete(StaffAccount).where(StaffAccount.username == normalize_username(username))
        )
        return result.rowcount > 0


def authenticate(username: str, password: str, *, engine: Engine) -> int | None:
    """The account id when the password is right, else None."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return None  # no account has such a password (refused at creation), nothing to hash
    with session_scope(engine) as session:
        account = session.execute(
            select(StaffAccount.id, StaffAccount.password_hash).where(
                StaffAccount.username == normalize_username(username)
            )
        ).first()
    if account is None:
        verify_password(password, _dummy_hash())
        return None
    return account.id if verify_password(password, account.password_hash) else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def open_session(account_id: int, *, engine: Engine) -> str:
    """A new session for the account; returns the cookie token."""
    token = secrets.token_urlsafe(32)
    now = datetime.utcnow()
    with session_scope(engine) as session:
        # Expired sessions are removed here, so the table cannot grow without bound.
        session.execute(delete(StaffSession).where(StaffSession.expires_at < now))
        session.add(
            StaffSession(
                token_hash=_token_hash(token),
                account_id=account_id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + SESSION_LIFETIME,
            )
        )
    return token


def load_session(token: str, *, engine: Engine) -> StaffIdentity | None:
    with session_scope(engine) as session:
        row = session.execute(
            select(StaffAccount.username, StaffSession.csrf_token)
            .join(StaffSession.account)
            .where(
                StaffSession.token_hash == _token_hash(token),
                StaffSession.expires_at > datetime.utcnow(),
            )
        ).first()
    return StaffIdentity(row.username, row.csrf_token) if row else None


def close_session(token: str, *, engine: Engine) -> None:
    with session_scope(engine) as session:
        session.execute(delete(StaffSession).where(StaffSession.token_hash == _token_hash(token)))


def tokens_match(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected, given)


class FailureLimiter:
    """Counts failures per key in a sliding window; a key with too many is locked out.

    In memory: the web server is one process, and a restart forgetting counts is acceptable
    (scrypt already makes each guess slow).
    """

    def __init__(self, max_failures: int, window_s: float, clock=time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.get(key, deque())
        cutoff = self._clock() - self.window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures

    def retry_after(self, key: str) -> float:
        """Seconds until the key may try again (0 when it is not locked out)."""
        failures = self._recent(key)
        if len(failures) < self.max_failures:
            return 0.0
        return max(0.0, failures[-self.max_failures] + self.window_s - self._clock())

    def record_failure(self, key: str) -> None:
        self._failures.setdefault(key, deque()).append(self._clock())

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)
