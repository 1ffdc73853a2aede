"""Start the whole assistant: action server, Rasa server, web server and the daily retention job,
supervised: a child that dies is restarted with backoff, and each restart is logged.

Used by `make run` (default ports, foreground until Ctrl-C) and by the test suite (free ports,
temporary databases). Closed by default: every process listens on SERVICE_HOST (loopback unless
the operator names an interface), Rasa's HTTP API needs a token (RASA_API_TOKEN, else one
generated once into var/secrets/rasa_api_token, mode 0600) and answers no foreign origin, the
REST channel is the guarded one (size and per-sender limits), the tracker store masks personal
data and every log line is masked (bot.production). Files are created 0600, folders 0700.

Why a supervisor of our own (a loop of ~60 lines) rather than supervisord or systemd: the
launcher already generates each child's configuration (free ports in tests, the token, nginx),
waits for readiness and is driven by the tests in-process (stop, kill, wait for the restart);
supervisord is not installed here and would add a daemon, its own config and an RPC client for
the same few lines. In containers the orchestrator is the supervisor (Compose `restart:`,
Kubernetes restartPolicy + probes, deploy/).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.channels import CREDENTIAL_ENV_VARS  # noqa: E402
from procedures_db.settings import RASA_API_TOKEN_FILE, VAR_DIR, get_settings  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "tthc.tar.gz"
# Every Python child runs under the log masker (bot/production/logmask.py).
MASKED = ["-m", "bot.production.logmask"]
TRACKER_STORE_CLASS = "bot.production.stores.ResilientSQLTrackerStore"
LOCK_STORE_CLASS = "bot.production.stores.ResilientRedisLockStore"
GUARDED_REST = "bot.production.channel.GuardedRestInput"
# Rasa's request size limit (Sanic reads SANIC_* settings from the environment): a chat message
# is at most 2,000 characters; anything far larger is refused with 413 before it is parsed.
RASA_MAX_REQUEST_BYTES = 64 * 1024
# Restart backoff: 1 s, 2 s, 4 s ... at most 60 s; a child that ran for 60 s starts again at 1 s.
BACKOFF_FIRST_S, BACKOFF_MAX_S, STABLE_AFTER_S = 1.0, 60.0, 60.0
RETENTION_EVERY_S = 86_400
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def throwaway_stack(work: Path) -> Stack:
    """A whole stack on free ports with its own SQLite tracker store and logs under `work`
    (evaluations and benchmarks; the procedures database is the configured one)."""
    return Stack(
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        log_dir=work / "logs",
        env={"TRACKER_DB_URL": f"sqlite:///{work / 'tracker.sqlite3'}"},
    )


def ensure_rasa_api_token(path: Path = RASA_API_TOKEN_FILE) -> str:
    """RASA_API_TOKEN, else the token stored at `path`, else a new one written there (0600)."""
    token = os.environ.get("RASA_API_TOKEN")
    if token:
        return token
    if path.exists():
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.parent.chmod(PRIVATE_DIR)
    token = secrets.token_hex(32)  # hex: safe in URLs, shells and command lines
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(token + "\n")
    return token


def write_atomically(path: Path, text: str) -> Path:
    """Write a child's configuration so that a child starting at that moment reads the old file
    or the new one, never a truncated one (nginx started on an empty include listens nowhere)."""
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)
    return path


def make_private(folder: Path) -> None:
    """Folders 0700 and files 0600 under `folder` (var/ of an older version was world-readable)."""
    if not folder.exists():
        return
    folder.chmod(PRIVATE_DIR)
    for path in folder.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod(PRIVATE_DIR if path.is_dir() else PRIVATE_FILE)


def tracker_store_config(url: str) -> dict:
    """Rasa's SQLTrackerStore wants dialect/host/db fields, not a URL."""
    parsed = make_url(url)
    config = {"type": "SQL", "dialect": parsed.drivername.split("+")[0], "db": parsed.database}
    for key, value in (
        ("url", parsed.host),
        ("port", parsed.port),
        ("username", parsed.username),
        ("password", parsed.password),
    ):
        if value:
            config[key] = value
    return config


def lock_store_config(url: str) -> dict:
    """redis://[:password@]host[:port][/db] -> Rasa's RedisLockStore fields."""
    parsed = make_url(url)
    config = {
        "type": "redis",
        "url": parsed.host or "127.0.0.1",
        "port": parsed.port or 6379,
        "db": int(parsed.database or 0),
    }
    if parsed.password:
        config["password"] = parsed.password
    return config


def rasa_endpoints(
    path: Path, action_url: str, tracker_url: str, lock_url: str | None, key_prefix: str = "tthc"
) -> Path:
    """endpoints.yml with the stores of the settings, through the classes of bot.production."""
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
    return write_atomically(path, yaml.safe_dump(endpoints, allow_unicode=True))


def guarded_credentials(path: Path) -> Path:
    """credentials.yml with the guarded REST channel in place of Rasa's plain `rest`."""
    source = ROOT / "credentials.yml"
    channels = yaml.safe_load(source.read_text(encoding="utf-8")) if source.exists() else None
    channels = {k: v for k, v in (channels or {}).items() if k != "rest"}
    channels[GUARDED_REST] = None
    return write_atomically(path, yaml.safe_dump(channels, allow_unicode=True))


def connectable(host: str) -> str:
    """An address to reach a server listening on `host` (all interfaces: loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


@dataclass
class Stack:
    model: Path = DEFAULT_MODEL
    rasa_port: int = 5005
    action_port: int = 5055
    web_port: int = 8080
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path = VAR_DIR / "logs"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Interface of Rasa and the action server (SERVICE_HOST; loopback by default).
    host: str = field(default_factory=lambda: get_settings().service_host)
    token_file: Path = RASA_API_TOKEN_FILE
    actions_package: str = "actions"
    # Alphanumeric prefix of the lock keys in Redis (one per deployment sharing a Redis).
    lock_key_prefix: str = "tthc"
    max_request_bytes: int = RASA_MAX_REQUEST_BYTES
    # Restarts done by the supervisor, per child.
    restarts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._spawned_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._restart_at: dict[str, float] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return ("actions", "rasa", "web", "retention")

    @property
    def rasa_url(self) -> str:
        return f"http://{connectable(self.host)}:{self.rasa_port}"

    @property
    def action_url(self) -> str:
        return f"http://{connectable(self.host)}:{self.action_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def token(self) -> str:
        return self.env.get("RASA_API_TOKEN") or ensure_rasa_api_token(self.token_file)

    def _env(self) -> dict[str, str]:
        # Unset channel secrets become empty: Rasa would refuse credentials.yml otherwise.
        env = {**dict.fromkeys(CREDENTIAL_ENV_VARS, ""), **os.environ, **self.env}
        env.update(
            PYTHONPATH=str(ROOT),
            RASA_TELEMETRY_ENABLED="false",
            TF_CPP_MIN_LOG_LEVEL="2",
            HF_HUB_OFFLINE="1",
            RASA_URL=self.rasa_url,
            RASA_API_TOKEN=self.token,
            WEB_PORT=str(self.web_port),
            SERVICE_HOST=self.host,
            # The action server's interface (rasa_sdk has no option for it).
            SANIC_HOST=self.host,
        )
        return env

    def _child_env(self, name: str) -> dict[str, str]:
        env = self._env()
        if name.startswith("rasa"):
            # Where messages enter. Not for the action server: Rasa sends it whole trackers.
            env.setdefault("SANIC_REQUEST_MAX_SIZE", str(self.max_request_bytes))
        return env

    def _tracker_url(self) -> str:
        return self.env.get("TRACKER_DB_URL") or get_settings().tracker_db_url

    def _lock_store_url(self) -> str | None:
        return self.env.get("LOCK_STORE_URL") or get_settings().lock_store_url

    def rasa_command(self, port: int, endpoints: Path, credentials: Path) -> list[str]:
        # No --cors: the widget talks to the web server only, so no foreign origin is allowed.
        # "--auth-token=…": a token starting with "-" would otherwise read as an option.
        rasa = [
            sys.executable,
            *MASKED,
            "rasa",
            "run",
            "--enable-api",
            f"--auth-token={self.token}",
        ]
        rasa += ["--interface", self.host, "--port", str(port), "--model", str(self.model)]
        rasa += ["--endpoints", str(endpoints), "--credentials", str(credentials)]
        return rasa

    def rasa_config(self) -> tuple[Path, Path]:
        """endpoints.yml and credentials.yml of this stack's Rasa servers."""
        folder = self.log_dir / f"rasa-config-{self.rasa_port}"
        endpoints = rasa_endpoints(
            folder / "endpoints.yml",
            f"{self.action_url}/webhook",
            self._tracker_url(),
            self._lock_store_url(),
            self.lock_key_prefix,
        )
        return endpoints, guarded_credentials(folder / "credentials.yml")

    def commands(self) -> dict[str, list[str]]:
        python = sys.executable
        actions = ["rasa_sdk", "--actions", self.actions_package, "-p", str(self.action_port)]
        retention = [str(ROOT / "scripts" / "retention.py"), "--every", str(RETENTION_EVERY_S)]
        return {
            "actions": [python, *MASKED, *actions],
            "rasa": self.rasa_command(self.rasa_port, *self.rasa_config()),
            "web": [python, *MASKED, "webapp"],
            "retention": [python, *retention],
        }

    def start_process(self, name: str) -> None:
        self.log_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        log_path = self.child_log(name)
        descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
        with self._lock, os.fdopen(descriptor, "ab") as log:
            self.processes[name] = subprocess.Popen(
                self.commands()[name],
                cwd=ROOT,
                env=self._child_env(name),
                stdout=log,
                stderr=subprocess.STDOUT,
                umask=0o077,  # databases, logs and sockets of the children: owner only
            )
            self._spawned_at[name] = time.monotonic()

    def health_url(self, name: str) -> str | None:
        return {
            "actions": f"{self.action_url}/health",
            "rasa": f"{self.rasa_url}/",
            "web": f"{self.web_url}/",
        }.get(name)

    def wait_ready(self, name: str, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        url = self.health_url(name)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir}")
            if url is None:
                return
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                last_error = error
                time.sleep(0.5)
        raise TimeoutError(
            f"{name} not ready after {timeout_s:.0f}s ({url}: {last_error!r}); see {self.log_dir}"
            f"\n{self.log_tail(name)}"
        )

    def child_log(self, name: str) -> Path:
        return self.log_dir / f"{name}-{self.rasa_port}.log"

    def log_files(self, name: str) -> list[Path]:
        return [self.child_log(name)]

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines a child wrote, for an error that CI shows after the machine is gone."""
        tails = []
        for path in self.log_files(name):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
                tails.append(f"--- {path.name}:\n" + "\n".join(text))
        return "\n".join(tails)

    def wait_restarted(self, name: str, old: subprocess.Popen, timeout_s: float = 480.0) -> None:
        """Wait until the supervisor replaced `old` and the new process is ready."""
        deadline = time.monotonic() + timeout_s
        while self.processes.get(name) is old or self.processes[name].poll() is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not restarted after {timeout_s:.0f}s")
            time.sleep(0.2)
        self.wait_ready(name, max(1.0, deadline - time.monotonic()))

    def start(self, names: tuple[str, ...] | None = None) -> Stack:
        names = names or self.names
        if any(name.startswith("rasa") for name in names) and not self.model.exists():
            raise FileNotFoundError(f"no trained model at {self.model}: run `make train`")
        try:
            for name in names:
                self.start_process(name)
            for name in names:
                self.wait_ready(name)
        except BaseException:
            self.stop()  # never leave the processes already started running
            raise
        self._stopping.clear()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()
        return self

    # --- supervision --------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            with self._lock:
                for name, process in list(self.processes.items()):
                    if process.poll() is not None:
                        self._restart_when_due(name, process)

    def _restart_when_due(self, name: str, process: subprocess.Popen) -> None:
        now = time.monotonic()
        due = self._restart_at.get(name)
        if due is None:
            if now - self._spawned_at.get(name, now) >= STABLE_AFTER_S:
                self._failures[name] = 0
            failures = self._failures.get(name, 0)
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**failures)
            self._failures[name] = failures + 1
            self._restart_at[name] = now + delay
            code = process.returncode
            self.note(f"{name} (pid {process.pid}) exited with {code}; restart in {delay:.0f} s")
        elif now >= due:
            del self._restart_at[name]
            try:
                self.start_process(name)
            except OSError as error:
                self.note(f"{name} could not be started: {error}")
                return
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self.note(f"{name} restarted (pid {self.processes[name].pid})")

    def note(self, line: str) -> None:
        """One supervisor event, on stderr and in supervisor.log beside the children's logs."""
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}"
        print(stamped, file=sys.stderr, flush=True)
        self.log_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        path = self.child_log("supervisor")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
        with os.fdopen(descriptor, "a", encoding="utf-8") as log:
            log.write(stamped + "\n")

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop a child on purpose: the supervisor does not bring it back (start_process does)."""
        with self._lock:
            process = self.processes.pop(name, None)
            self._restart_at.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join()
        for name in list(self.processes):
            self.stop_process(name)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="Run action server, Rasa and the web server")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    os.umask(0o077)
    make_private(VAR_DIR)
    settings = get_settings()
    # SIGTERM (a service manager, `timeout`) must stop the children too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stack = Stack(model=args.model, web_port=settings.web_port)
    print("Đang khởi động (Rasa cần khoảng 30-60 giây để nạp mô hình)...", flush=True)
    with stack:
        print(f"\nSẵn sàng / Ready: {stack.web_url}/  (cổng thông tin + widget)")
        print(f"Tra cứu cho cán bộ / Staff lookup: {stack.web_url}/staff")
        print(f"Rasa: {stack.rasa_url}  ·  Action server: {stack.action_url}")
        token_source = "RASA_API_TOKEN" if os.environ.get("RASA_API_TOKEN") else stack.token_file
        print(f"Rasa API token: {token_source}")
        print(f"Nhật ký / Logs: {stack.log_dir}  ·  Ctrl-C để dừng", flush=True)
        try:
            while True:  # the supervisor thread restarts children that die
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
