"""Production profile: several Rasa replicas and the action server behind nginx, shared stores.

PostgreSQL holds the procedures and the Rasa conversations (TRACKER_DB_URL), Redis the Rasa lock
store (LOCK_STORE_URL), so any replica can continue any conversation. nginx (a child process with
a generated config under the log folder) is the public entrance (/webhooks/ to Rasa, the rest to
the web server) and the web server's RASA_URL. Rasa runs with the guarded REST channel, the
resilient stores and masked logs (bot.production). Used by `make run-prod` and tests/test_prod_*.

    RASA_API_TOKEN=... python scripts/prod.py --env-file deploy/prod.env [--replicas 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from procedures_db.settings import get_settings  # noqa: E402
from scripts.stack import (  # noqa: E402
    DEFAULT_MODEL,
    Stack,
    free_port,
    lock_store_config,
    tracker_store_config,
)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "tthc.conf.template"
MASKED = ["-m", "bot.production.logmask"]
TRACKER_STORE_CLASS = "bot.production.stores.ResilientSQLTrackerStore"
LOCK_STORE_CLASS = "bot.production.stores.ResilientRedisLockStore"
GUARDED_REST = "bot.production.channel.GuardedRestInput"
# Rasa's own request size limit (Sanic reads SANIC_* settings from the environment).
RASA_MAX_REQUEST_BYTES = 1_000_000
# Sanic (Rasa, action server) keeps idle connections longer than its clients do (aiohttp 15 s,
# nginx upstream 30 s): with Sanic's default 5 s a client reusing a connection the server is just
# closing loses the request ("Cannot write to closing transport"), measured under load.
SANIC_KEEP_ALIVE_S = 75

NGINX_MAIN = """daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 2048; }}
http {{
    log_format tthc '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                    'upstream=$upstream_addr rt=$request_time urt=$upstream_response_time';
    access_log {run}/access.log tthc;
    client_body_temp_path {run}/tmp/body;
    proxy_temp_path {run}/tmp/proxy;
    fastcgi_temp_path {run}/tmp/fastcgi;
    uwsgi_temp_path {run}/tmp/uwsgi;
    scgi_temp_path {run}/tmp/scgi;
    include {run}/tthc.conf;
}}
"""


def render_nginx_site(public_listen: str, rasa_listen: str, rasa: list[str], web: str) -> str:
    servers = "\n    ".join(f"server {address} max_fails=1 fail_timeout=5s;" for address in rasa)
    return string.Template(NGINX_TEMPLATE.read_text(encoding="utf-8")).safe_substitute(
        TTHC_PUBLIC_LISTEN=public_listen,
        TTHC_RASA_LISTEN=rasa_listen,
        TTHC_RASA_SERVERS=servers,
        TTHC_WEB_SERVER=web,
    )


def production_credentials(path: Path) -> Path:
    """credentials.yml with the guarded REST channel in place of Rasa's plain `rest`."""
    source = ROOT / "credentials.yml"
    channels = yaml.safe_load(source.read_text(encoding="utf-8")) if source.exists() else None
    channels = {k: v for k, v in (channels or {}).items() if k != "rest"}
    channels[GUARDED_REST] = None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(channels, allow_unicode=True), encoding="utf-8")
    return path


def production_endpoints(
    path: Path, action_url: str, tracker_url: str, lock_url: str | None, key_prefix: str = "tthc"
) -> Path:
    """endpoints.yml with the shared stores, through the resilient classes of bot.production."""
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
    endpoints["action_endpoint"] = {"url": action_url}
    tracker = {**tracker_store_config(tracker_url), "type": TRACKER_STORE_CLASS}
    if tracker["dialect"] == "postgresql":
        # A database that does not answer fails in 3 s instead of blocking Rasa.
        tracker["query"] = {"connect_timeout": "3"}
    endpoints["tracker_store"] = tracker
    if lock_url:
        lock = {**lock_store_config(lock_url), "type": LOCK_STORE_CLASS, "key_prefix": key_prefix}
        endpoints["lock_store"] = lock
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(endpoints, allow_unicode=True), encoding="utf-8")
    return path


def write_rasa_config(folder: Path, action_url: str, key_prefix: str = "tthc") -> tuple[Path, Path]:
    """endpoints.yml and credentials.yml of a production Rasa replica, from the settings."""
    settings = get_settings()
    endpoints = production_endpoints(
        folder / "endpoints.yml",
        action_url,
        settings.tracker_db_url,
        settings.lock_store_url,
        key_prefix,
    )
    return endpoints, production_credentials(folder / "credentials.yml")


def ensure_postgres_database(url: str) -> None:
    """Create the database of a PostgreSQL URL if it does not exist yet."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            ).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
                print(f"Created PostgreSQL database {parsed.database}", flush=True)
    finally:
        admin.dispose()


def reachable(url: str) -> bool:
    parsed = make_url(url)
    default_port = 6379 if parsed.drivername.startswith("redis") else 5432
    try:
        with socket.create_connection((parsed.host, parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class ProdStack(Stack):
    """Stack with `replicas` Rasa servers behind nginx. `rasa_port` is nginx's internal entrance
    (so `rasa_url` and the web server's RASA_URL are load-balanced); `public_port` is the public
    one. Process names: actions, rasa-0 .. rasa-N, web, nginx."""

    replicas: int = 2
    public_port: int = 8000
    replica_ports: list[int] = field(default_factory=list)
    actions_package: str = "actions"
    # Alphanumeric prefix of the lock keys in Redis (one per deployment sharing a Redis).
    lock_key_prefix: str = "tthc"

    def __post_init__(self) -> None:
        if not self.replica_ports:
            self.replica_ports = [free_port() for _ in range(self.replicas)]
        self.replicas = len(self.replica_ports)

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def nginx_dir(self) -> Path:
        return self.log_dir / f"nginx-{self.public_port}"

    @property
    def names(self) -> tuple[str, ...]:
        return ("actions", *(f"rasa-{i}" for i in range(self.replicas)), "web", "nginx")

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.setdefault("SANIC_REQUEST_MAX_SIZE", str(RASA_MAX_REQUEST_BYTES))
        env.setdefault("SANIC_KEEP_ALIVE_TIMEOUT", str(SANIC_KEEP_ALIVE_S))
        return env

    def _write_nginx_config(self, replica_ports: list[int] | None = None) -> Path:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.nginx_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        site = render_nginx_site(
            f"127.0.0.1:{self.public_port}",
            f"127.0.0.1:{self.rasa_port}",
            [f"127.0.0.1:{port}" for port in replica_ports or self.replica_ports],
            f"127.0.0.1:{self.web_port}",
        )
        (self.nginx_dir / "tthc.conf").write_text(site, encoding="utf-8")
        main = self.nginx_dir / "nginx.conf"
        main.write_text(NGINX_MAIN.format(run=self.nginx_dir), encoding="utf-8")
        return main

    def route_to_replicas(self, count: int) -> None:
        """Send traffic to the first `count` replicas only (nginx reloads gracefully)."""
        self._write_nginx_config(self.replica_ports[:count])
        self.processes["nginx"].send_signal(signal.SIGHUP)
        time.sleep(1.0)  # new workers take over; old ones finish their requests

    def commands(self) -> dict[str, list[str]]:
        python = sys.executable
        folder = self.log_dir / f"rasa-config-{self.rasa_port}"
        endpoints = production_endpoints(
            folder / "endpoints.yml",
            f"{self.action_url}/webhook",
            self._tracker_url(),
            self._lock_store_url(),
            self.lock_key_prefix,
        )
        credentials = production_credentials(folder / "credentials.yml")
        nginx_conf = self._write_nginx_config()
        actions = ["--actions", self.actions_package, "-p", str(self.action_port)]
        nginx = ["-p", str(self.nginx_dir), "-c", str(nginx_conf)]
        commands = {
            "actions": [python, *MASKED, "rasa_sdk", *actions],
            "web": [python, *MASKED, "webapp"],
            "nginx": [NGINX, *nginx, "-e", str(self.nginx_dir / "error.log")],
        }
        for index, port in enumerate(self.replica_ports):
            rasa = self.rasa_command(port, endpoints, credentials)
            commands[f"rasa-{index}"] = [rasa[0], *MASKED, *rasa[2:]]
        return commands

    def health_url(self, name: str) -> str:
        if name.startswith("rasa-"):
            return f"http://127.0.0.1:{self.replica_ports[int(name.split('-')[1])]}/"
        if name == "nginx":
            return f"{self.public_url}/nginx-health"
        return super().health_url(name)

    def wait_ready(self, name: str, timeout_s: float = 480.0) -> None:
        # Several replicas load their model at the same time: slower than one on a busy machine.
        super().wait_ready(name, timeout_s)

    def check_settings(self) -> None:
        """Refuse what production must never run with."""
        if not self._env().get("RASA_API_TOKEN"):
            raise RuntimeError(
                "RASA_API_TOKEN is not set: the production profile never runs Rasa's HTTP API "
                "without a token. export RASA_API_TOKEN=$(python -c "
                "'import secrets; print(secrets.token_hex(16))')"
            )
        if not self._lock_store_url():
            raise RuntimeError(
                "LOCK_STORE_URL is not set: several replicas need the Redis lock store"
            )

    def start(self, names: tuple[str, ...] | None = None) -> ProdStack:
        self.check_settings()
        try:
            super().start(names or self.names)
        except BaseException:
            self.stop()  # no orphan processes when one of them fails to start
            raise
        return self


def load_env_file(path: Path) -> None:
    """KEY=VALUE lines into os.environ; variables already set in the environment win."""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            if value.strip():
                os.environ.setdefault(key.strip(), value.strip())


def prepare_databases() -> None:
    settings = get_settings()
    for name, url in (
        ("PostgreSQL (procedures)", settings.database_url),
        ("PostgreSQL (tracker)", settings.tracker_db_url),
        ("Redis (lock store)", settings.lock_store_url),
    ):
        if url and not url.startswith("sqlite") and not reachable(url):
            print(f"WARNING: {name} at {make_url(url).host} is not reachable yet", flush=True)
    for url in {settings.database_url, settings.tracker_db_url}:
        ensure_postgres_database(url)
    subprocess.run([sys.executable, "-m", "procedures_db", "import"], cwd=ROOT, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Production profile: Rasa replicas behind nginx")
    parser.add_argument("--env-file", type=Path, default=ROOT / "deploy" / "prod.env")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--public-port", type=int, default=8000, help="nginx, public entrance")
    parser.add_argument("--rasa-port", type=int, default=5005, help="nginx, internal Rasa API")
    parser.add_argument("--first-replica-port", type=int, default=5011)
    parser.add_argument("--action-port", type=int, default=5055)
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument(
        "--write-rasa-config",
        type=Path,
        metavar="DIR",
        help="only write endpoints.yml and credentials.yml for one replica (containers)",
    )
    parser.add_argument("--action-url", default="http://actions:5055/webhook")
    args = parser.parse_args()
    if args.env_file.exists():
        load_env_file(args.env_file)
    get_settings.cache_clear()
    if args.write_rasa_config:
        for path in write_rasa_config(args.write_rasa_config, args.action_url):
            print(f"Wrote {path}")
        return 0
    # `kill` (SIGTERM) stops the children too, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stack = ProdStack(
        model=args.model,
        rasa_port=args.rasa_port,
        action_port=args.action_port,
        web_port=get_settings().web_port,
        public_port=args.public_port,
        replica_ports=[args.first_replica_port + i for i in range(args.replicas)],
    )
    try:
        stack.check_settings()
        if not args.skip_import:
            prepare_databases()
        print(f"Starting {args.replicas} Rasa replicas (about a minute)...", flush=True)
        stack.start()
        print(f"\nReady: {stack.public_url}/  (portal, chat, /webhooks/)", flush=True)
        print(f"Rasa (internal, load-balanced): {stack.rasa_url}  ·  logs: {stack.log_dir}")
        while all(process.poll() is None for process in stack.processes.values()):
            time.sleep(1)
        dead = [name for name, p in stack.processes.items() if p.poll() is not None]
        print(f"Stopped because {', '.join(dead)} exited; see {stack.log_dir}", file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError, FileNotFoundError) as error:
        print(f"Cannot start the production profile: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
