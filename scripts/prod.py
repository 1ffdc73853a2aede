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

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from procedures_db.settings import get_settings  # noqa: E402
from scripts.stack import (  # noqa: E402
    DEFAULT_MODEL,
    LOCK_STORE_CLASS,
    TRACKER_STORE_CLASS,
    Stack,
    connectable,
    free_port,
    guarded_credentials,
    make_private,
    rasa_endpoints,
    write_atomically,
)

__all__ = ["LOCK_STORE_CLASS", "TRACKER_STORE_CLASS", "ProdStack", "render_nginx_site"]

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "tthc.conf.template"
# Rasa's own request size limit behind nginx (which refuses public bodies over 64k itself; the
# internal entrance allows 1m for the HTTP API).
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


def write_rasa_config(folder: Path, action_url: str, key_prefix: str = "tthc") -> tuple[Path, Path]:
    """endpoints.yml and credentials.yml of a production Rasa replica, from the settings."""
    settings = get_settings()
    endpoints = rasa_endpoints(
        folder / "endpoints.yml",
        action_url,
        settings.tracker_db_url,
        settings.lock_store_url,
        key_prefix,
    )
    return endpoints, guarded_credentials(folder / "credentials.yml")


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
    max_request_bytes: int = RASA_MAX_REQUEST_BYTES
    # nginx's public entrance: loopback until the operator names the interface citizens reach.
    public_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.replica_ports:
            self.replica_ports = [free_port() for _ in range(self.replicas)]
        self.replicas = len(self.replica_ports)

    @property
    def public_url(self) -> str:
        return f"http://{connectable(self.public_host)}:{self.public_port}"

    @property
    def nginx_dir(self) -> Path:
        return self.log_dir / f"nginx-{self.public_port}"

    @property
    def names(self) -> tuple[str, ...]:
        replicas = (f"rasa-{i}" for i in range(self.replicas))
        return ("actions", *replicas, "web", "nginx", "retention")

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.setdefault("SANIC_KEEP_ALIVE_TIMEOUT", str(SANIC_KEEP_ALIVE_S))
        # nginx (on this machine) is the web server's proxy: it says who the client is.
        env.setdefault("TRUSTED_PROXIES", "127.0.0.1")
        return env

    @property
    def nginx_config(self) -> Path:
        return self.nginx_dir / "nginx.conf"

    @property
    def nginx_error_log(self) -> Path:
        return self.nginx_dir / "error.log"

    def _write_nginx_config(self, replica_ports: list[int] | None = None) -> Path:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.nginx_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        site = render_nginx_site(
            f"{self.public_host}:{self.public_port}",
            f"{self.host}:{self.rasa_port}",
            [f"{connectable(self.host)}:{port}" for port in replica_ports or self.replica_ports],
            f"127.0.0.1:{self.web_port}",
        )
        write_atomically(self.nginx_dir / "tthc.conf", site)
        return write_atomically(self.nginx_config, NGINX_MAIN.format(run=self.nginx_dir))

    def route_to_replicas(self, count: int) -> None:
        """Send traffic to the first `count` replicas only (nginx reloads gracefully)."""
        self._write_nginx_config(self.replica_ports[:count])
        self.processes["nginx"].send_signal(signal.SIGHUP)
        time.sleep(1.0)  # new workers take over; old ones finish their requests

    def commands(self) -> dict[str, list[str]]:
        commands = super().commands()
        rasa = commands.pop("rasa")
        port_at = rasa.index("--port") + 1
        for index, port in enumerate(self.replica_ports):
            commands[f"rasa-{index}"] = [*rasa[:port_at], str(port), *rasa[port_at + 1 :]]
        nginx = ["-p", str(self.nginx_dir), "-c", str(self.nginx_config)]
        commands["nginx"] = [NGINX, *nginx, "-e", str(self.nginx_error_log)]
        return commands

    def start_process(self, name: str) -> None:
        if name == "nginx":  # written here only: every other child's start builds the commands
            self._write_nginx_config()
        super().start_process(name)

    def log_files(self, name: str) -> list[Path]:
        extra = [self.nginx_error_log] if name == "nginx" else []
        return [*super().log_files(name), *extra]

    def health_url(self, name: str) -> str | None:
        if name.startswith("rasa-"):
            port = self.replica_ports[int(name.split("-")[1])]
            return f"http://{connectable(self.host)}:{port}/"
        if name == "nginx":
            return f"{self.public_url}/nginx-health"
        return super().health_url(name)

    def wait_ready(self, name: str, timeout_s: float = 480.0) -> None:
        # Several replicas load their model at the same time: slower than one on a busy machine.
        super().wait_ready(name, timeout_s)

    def check_settings(self) -> None:
        """Refuse what production must never run with."""
        # Never a generated token here: every replica and client of a deployment needs the same.
        if not (self.env.get("RASA_API_TOKEN") or os.environ.get("RASA_API_TOKEN")):
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
        super().start(names)  # stops what it started when one of them fails
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
    parser.add_argument(
        "--public-host", default="127.0.0.1", help="interface of the public entrance (0.0.0.0: all)"
    )
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
    os.umask(0o077)
    make_private(ROOT / "var")
    # `kill` (SIGTERM) stops the children too, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stack = ProdStack(
        model=args.model,
        rasa_port=args.rasa_port,
        action_port=args.action_port,
        web_port=get_settings().web_port,
        public_port=args.public_port,
        public_host=args.public_host,
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
        while True:  # the supervisor thread restarts children that die
            time.sleep(1)
    except (RuntimeError, TimeoutError, FileNotFoundError) as error:
        print(f"Cannot start the production profile: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
