"""The launcher without Rasa: the generated API token, private files, restart backoff, the
children's configuration files, and the Makefile target that installs the Debian packages the
suite needs."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from procedures_db import settings as settings_module
from scripts.prod import ProdStack
from scripts.stack import Stack, ensure_rasa_api_token, make_private, write_atomically

ROOT = Path(__file__).resolve().parent.parent


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_token_is_created_once_private_and_read_by_the_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("RASA_API_TOKEN", raising=False)
    path = tmp_path / "secrets" / "rasa_api_token"
    token = ensure_rasa_api_token(path)
    assert len(token) >= 32
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert ensure_rasa_api_token(path) == token  # reused, not replaced
    monkeypatch.setattr(settings_module, "RASA_API_TOKEN_FILE", path)
    assert settings_module.load_settings().rasa_api_token == token  # web server, scripts
    monkeypatch.setenv("RASA_API_TOKEN", "from-the-environment")
    assert ensure_rasa_api_token(path) == "from-the-environment"
    assert settings_module.load_settings().rasa_api_token == "from-the-environment"


def test_make_private_fixes_what_an_older_version_left_readable(tmp_path):
    var = tmp_path / "var"
    (var / "logs").mkdir(parents=True)
    for path in (var / "tracker.sqlite3", var / "logs" / "rasa.log"):
        path.write_text("x")
        path.chmod(0o644)
    (var / "logs").chmod(0o755)
    make_private(var)
    assert _mode(var) == _mode(var / "logs") == 0o700
    assert _mode(var / "tracker.sqlite3") == _mode(var / "logs" / "rasa.log") == 0o600


class CrashingStack(Stack):
    """One child that dies half a second after each start."""

    @property
    def names(self) -> tuple[str, ...]:
        return ("crasher",)

    def commands(self) -> dict[str, list[str]]:
        return {"crasher": [sys.executable, "-c", "import time; time.sleep(0.5); exit(3)"]}


def test_a_child_that_keeps_dying_is_restarted_with_growing_backoff(tmp_path):
    stack = CrashingStack(log_dir=tmp_path / "logs", token_file=tmp_path / "token", rasa_port=1)
    stack.start()
    try:
        for _ in range(3):
            stack.wait_restarted("crasher", stack.processes["crasher"], timeout_s=60)
    finally:
        stack.stop()
    log = (tmp_path / "logs" / "supervisor-1.log").read_text()
    delays = [
        int(d) for d in re.findall(r"crasher \(pid \d+\) exited with 3; restart in (\d+) s", log)
    ]
    assert delays[:3] == [1, 2, 4], log
    assert len(re.findall(r"crasher restarted \(pid \d+\)", log)) >= 3
    assert stack.processes == {}  # stopped on purpose: nothing left, nothing restarted


def test_a_configuration_being_rewritten_is_read_whole(tmp_path):
    # A child starting while its configuration is rewritten must never read a truncated file: an
    # nginx that read an empty site include ran for 480 s listening nowhere.
    path = tmp_path / "conf" / "site.conf"
    text = "server { listen 127.0.0.1:1; }\n" * 2000
    write_atomically(path, text)
    seen: set[int] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(len(path.read_text(encoding="utf-8")))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(300):
            write_atomically(path, text)
    finally:
        done.set()
        reader.join()
    assert seen == {len(text)}
    assert _mode(path) == 0o600 and sorted(p.name for p in path.parent.iterdir()) == ["site.conf"]


def test_starting_other_children_leaves_the_nginx_configuration_alone(tmp_path):
    stack = ProdStack(log_dir=tmp_path / "logs", token_file=tmp_path / "token", public_port=1)
    assert not stack.nginx_config.exists()  # building the commands writes nothing of nginx's
    assert stack.commands()["nginx"][-3:] == [
        str(stack.nginx_config),
        "-e",
        str(stack.nginx_dir / "error.log"),
    ]
    assert not stack.nginx_config.exists()


def test_make_test_installs_the_debian_packages_it_needs():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:.*\bsystem-packages\b", makefile, re.MULTILINE)
    packages = re.search(r"^SYSTEM_PACKAGES := (.+)$", makefile, re.MULTILINE).group(1).split()
    assert {"nginx", "chromium"} <= set(packages)
    dry_run = subprocess.run(
        ["make", "-n", "system-packages"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "dpkg-query" in dry_run and "apt-get install" in dry_run


@pytest.mark.parametrize("binary", ["/usr/sbin/nginx", "/usr/bin/chromium"])
def test_the_packages_are_installed(binary):
    assert Path(binary).exists(), f"{binary} missing: run `make system-packages`"
