"""Start the whole assistant: action server, Rasa server and web server.

Used by `make run` (default ports, foreground until Ctrl-C) and by the test suite (free ports,
temporary databases). The endpoints file Rasa reads is generated from endpoints.yml and the
settings, so ports and stores are configured in one place.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
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
from procedures_db.settings import VAR_DIR, get_settings  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "tthc.tar.gz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def write_endpoints(
    path: Path, action_port: int, tracker_url: str, lock_store_url: str | None = None
) -> Path:
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
    endpoints["action_endpoint"] = {"url": f"http://127.0.0.1:{action_port}/webhook"}
    endpoints["tracker_store"] = tracker_store_config(tracker_url)
    if lock_store_url:
        endpoints["lock_store"] = lock_store_config(lock_store_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(endpoints, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Stack:
    model: Path = DEFAULT_MODEL
    rasa_port: int = 5005
    action_port: int = 5055
    web_port: int = 8080
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path = VAR_DIR / "logs"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def action_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _env(self) -> dict[str, str]:
        # Unset channel secrets become empty: Rasa would refuse credentials.yml otherwise.
        env = {**dict.fromkeys(CREDENTIAL_ENV_VARS, ""), **os.environ, **self.env}
        env.update(
            PYTHONPATH=str(ROOT),
            RASA_TELEMETRY_ENABLED="false",
            TF_CPP_MIN_LOG_LEVEL="2",
            HF_HUB_OFFLINE="1",
            RASA_URL=self.rasa_url,
            WEB_PORT=str(self.web_port),
        )
        return env

    def _tracker_url(self) -> str:
        return self.env.get("TRACKER_DB_URL") or get_settings().tracker_db_url

    def _lock_store_url(self) -> str | None:
        return self.env.get("LOCK_STORE_URL") or get_settings().lock_store_url

    def rasa_command(self, port: int, endpoints: Path, credentials: Path) -> list[str]:
        rasa = [sys.executable, "-m", "rasa", "run", "--enable-api", "--cors", "*"]
        rasa += ["--model", str(self.model), "--port", str(port)]
        rasa += ["--endpoints", str(endpoints), "--credentials", str(credentials)]
        token = self._env().get("RASA_API_TOKEN")
        if token:
            rasa += ["--auth-token", token]
        return rasa

    def commands(self) -> dict[str, list[str]]:
        python = sys.executable
        endpoints = write_endpoints(
            self.log_dir / f"endpoints-{self.rasa_port}.yml",
            self.action_port,
            self._tracker_url(),
            self._lock_store_url(),
        )
        actions = [python, "-m", "rasa_sdk", "--actions", "actions", "-p", str(self.action_port)]
        return {
            "actions": actions,
            "rasa": self.rasa_command(self.rasa_port, endpoints, ROOT / "credentials.yml"),
            "web": [python, "-m", "webapp"],
        }

    def start_process(self, name: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}-{self.rasa_port}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self.commands()[name], cwd=ROOT, env=self._env(), stdout=log, stderr=subprocess.STDOUT
        )

    def health_url(self, name: str) -> str:
        return {
            "actions": f"{self.action_url}/health",
            "rasa": f"{self.rasa_url}/",
            "web": f"{self.web_url}/",
        }[name]

    def wait_ready(self, name: str, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir}")
            try:
                with urllib.request.urlopen(self.health_url(name), timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise TimeoutError(f"{name} not ready after {timeout_s:.0f}s; see {self.log_dir}")

    def start(self, names: tuple[str, ...] = ("actions", "rasa", "web")) -> Stack:
        if "rasa" in names and not self.model.exists():
            raise FileNotFoundError(f"no trained model at {self.model}: run `make train`")
        try:
            for name in names:
                self.start_process(name)
            for name in names:
                self.wait_ready(name)
        except BaseException:
            self.stop()  # never leave the processes already started running
            raise
        return self

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
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
    settings = get_settings()
    # SIGTERM (a service manager, `timeout`) must stop the children too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stack = Stack(model=args.model, web_port=settings.web_port)
    print("Đang khởi động (Rasa cần khoảng 30-60 giây để nạp mô hình)...", flush=True)
    with stack:
        print(f"\nSẵn sàng / Ready: {stack.web_url}/  (cổng thông tin + widget)")
        print(f"Tra cứu cho cán bộ / Staff lookup: {stack.web_url}/staff")
        print(f"Rasa: {stack.rasa_url}  ·  Action server: {stack.action_url}")
        print(f"Nhật ký / Logs: {stack.log_dir}  ·  Ctrl-C để dừng", flush=True)
        try:
            while all(p.poll() is None for p in stack.processes.values()):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        dead = [name for name, p in stack.processes.items() if p.poll() is not None]
        if dead:
            print(f"Stopped because {', '.join(dead)} exited; see {stack.log_dir}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
