"""The one place configuration is read from: the environment, with defaults.

Every part of the project (library, CLI, actions, bot components, web server) calls
`get_settings()` instead of reading `os.environ` itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
# Rasa's HTTP API token when RASA_API_TOKEN is unset: generated once by scripts/stack.py (0600).
RASA_API_TOKEN_FILE = VAR_DIR / "secrets" / "rasa_api_token"


def _default_data_dir() -> Path:
    # The shared data folder sits beside the project root (../shared/data/tthc).
    return PROJECT_ROOT.parent / "shared" / "data" / "tthc"


def _rasa_api_token() -> str | None:
    token = os.environ.get("RASA_API_TOKEN")
    if not token and RASA_API_TOKEN_FILE.exists():
        token = RASA_API_TOKEN_FILE.read_text(encoding="ascii").strip()
    return token or None


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    database_url: str
    tracker_db_url: str
    data_dir: Path
    overlay_csv: Path | None
    province_profile: Path
    action_timeout_s: float
    rasa_url: str
    web_host: str
    web_port: int
    # Other sites allowed to embed the chat widget (CORS on /api/chat); "*" allows any site.
    chat_allowed_origins: tuple[str, ...] = ()
    # Public JSON API: requests per minute per client IP (0 = no limit, e.g. for benchmarks).
    api_rate_limit_per_minute: int = 300
    # Call-back numbers left outside staff hours are deleted after this many days.
    callback_retention_days: int = 30
    # Redis for the Rasa lock store (and the shared per-sender limit) when several Rasa replicas
    # serve one tracker store, e.g. redis://127.0.0.1:6379/1. None: in-memory, one replica only.
    lock_store_url: str | None = None
    # Chat messages one sender may send per minute through the Rasa webhooks (0 = no limit).
    sender_messages_per_minute: int = 30
    # Turns one Rasa process works on at once, every channel together (bot/channels/gate.py);
    # later messages wait their turn in arrival order (0 = no limit). Bounds a burst's tail
    # latency: BENCHMARKS.md, "Turns admitted in order".
    concurrent_turns: int = 3
    # Conversations idle for longer than this are deleted by scripts/retention.py.
    tracker_retention_days: int = 180
    # The procedure resolver's trained ranking model (`make train` builds it).
    resolver_model: Path = PROJECT_ROOT / "models" / "resolver.json"
    # The asked-fact model (procedures_db.asked; `make train` builds it).
    asked_model: Path = PROJECT_ROOT / "models" / "asked.json"
    # A province's own vocabulary: YAML files named like procedures_db/vocabulary/'s, merged over
    # them (procedures_db.vocabulary). None: the shipped vocabulary only.
    vocabulary_extra_dir: Path | None = None
    # Interface of the internal services (Rasa, action server): loopback unless the operator
    # names a private interface (several hosts).
    service_host: str = "127.0.0.1"
    # Rasa's HTTP API token: RASA_API_TOKEN, else the file `make run` generates.
    rasa_api_token: str | None = None
    # Reverse proxies (addresses or networks) whose X-Forwarded-For / X-Real-IP /
    # X-Forwarded-Proto are believed; nobody else's.
    trusted_proxies: tuple[str, ...] = ()
    # /api/chat messages per minute per client IP (0 = no limit).
    chat_messages_per_minute_per_ip: int = 60

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings() -> Settings:
    overlay = os.environ.get("PROCEDURES_OVERLAY_CSV")
    vocabulary_extra = os.environ.get("VOCABULARY_EXTRA_DIR")
    return Settings(
        database_url=os.environ.get(
            "PROCEDURES_DB_URL", f"sqlite:///{VAR_DIR / 'procedures.sqlite3'}"
        ),
        tracker_db_url=os.environ.get("TRACKER_DB_URL", f"sqlite:///{VAR_DIR / 'tracker.sqlite3'}"),
        data_dir=Path(os.environ.get("TTHC_DATA_DIR", str(_default_data_dir()))),
        overlay_csv=Path(overlay) if overlay else None,
        province_profile=Path(
            os.environ.get("PROVINCE_PROFILE", str(PROJECT_ROOT / "province.yml"))
        ),
        action_timeout_s=_env_float("ACTION_DB_TIMEOUT_S", 3.0),
        rasa_url=os.environ.get("RASA_URL", "http://localhost:5005"),
        web_host=os.environ.get("WEB_HOST", "127.0.0.1"),
        web_port=int(os.environ.get("WEB_PORT", "8080")),
        chat_allowed_origins=tuple(
            origin.strip().rstrip("/")
            for origin in os.environ.get("CHAT_ALLOWED_ORIGINS", "").split(",")
            if origin.strip()
        ),
        api_rate_limit_per_minute=int(os.environ.get("API_RATE_LIMIT_PER_MINUTE", "300")),
        callback_retention_days=int(os.environ.get("CALLBACK_RETENTION_DAYS", "30")),
        lock_store_url=os.environ.get("LOCK_STORE_URL") or None,
        sender_messages_per_minute=int(os.environ.get("SENDER_MESSAGES_PER_MINUTE", "30")),
        concurrent_turns=int(os.environ.get("CONCURRENT_TURNS", "3")),
        tracker_retention_days=int(os.environ.get("TRACKER_RETENTION_DAYS", "180")),
        resolver_model=Path(
            os.environ.get("RESOLVER_MODEL") or PROJECT_ROOT / "models" / "resolver.json"
        ),
        asked_model=Path(os.environ.get("ASKED_MODEL") or PROJECT_ROOT / "models" / "asked.json"),
        vocabulary_extra_dir=Path(vocabulary_extra) if vocabulary_extra else None,
        service_host=os.environ.get("SERVICE_HOST") or "127.0.0.1",
        rasa_api_token=_rasa_api_token(),
        trusted_proxies=_env_list("TRUSTED_PROXIES"),
        chat_messages_per_minute_per_ip=int(os.environ.get("CHAT_RATE_LIMIT_PER_MINUTE", "60")),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once. Tests call `get_settings.cache_clear()`."""
    return load_settings()
