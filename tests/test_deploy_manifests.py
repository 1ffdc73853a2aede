"""Structural checks of deploy/ (no Docker engine or cluster here): the files parse, services and
objects reference each other consistently, ports agree, every variable the app reads is set,
and no secret value is written in them."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
import yaml

from scripts.prod import LOCK_STORE_CLASS, TRACKER_STORE_CLASS, render_nginx_site

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# `${NAME}` references in the channel settings (comments left out by parsing the YAML first).
CREDENTIAL_VARS = set(
    re.findall(
        r"\$\{([A-Z0-9_]+)\}",
        yaml.safe_dump(yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))),
    )
)
SECRETS = {"RASA_API_TOKEN", "POSTGRES_PASSWORD"} | {
    name for name in CREDENTIAL_VARS if "SECRET" in name or "TOKEN" in name
}
_ENV_READ = re.compile(
    r"(?:os\.environ\.get|os\.getenv|_env_float|_env_int)\(\s*\"([A-Z0-9_]+)\"|"
    r"os\.environ\[\s*\"([A-Z0-9_]+)\"\]"
)


def app_env_vars() -> set[str]:
    """Every environment variable the application code or Rasa's credentials read."""
    names = set(CREDENTIAL_VARS)
    for package in ("procedures_db", "bot", "actions", "webapp"):
        for path in (ROOT / package).rglob("*.py"):
            for match in _ENV_READ.finditer(path.read_text(encoding="utf-8")):
                names.add(match.group(1) or match.group(2))
    return names | {"RASA_API_TOKEN"}


def test_app_env_vars_are_found() -> None:
    names = app_env_vars()
    # The scan must see the settings module, or every check below would pass vacuously.
    assert {"PROCEDURES_DB_URL", "TRACKER_DB_URL", "LOCK_STORE_URL", "WEB_PORT"} <= names
    assert {"FACEBOOK_APP_SECRET", "ZALO_OA_SECRET_KEY"} <= names


# --- Docker Compose ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def _command(service: dict) -> str:
    command = service.get("command", [])
    return " ".join(command) if isinstance(command, list) else command


def test_compose_structure(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "actions", "rasa", "web", "nginx", "import"} <= set(services)
    for name, service in services.items():
        assert service.get("image"), f"service {name} has no image"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            elif not source.startswith(("/", "$", ".")):
                assert source in compose.get("volumes", {}), f"{name}: unknown volume {source}"
    assert services["rasa"]["deploy"]["replicas"] >= 2
    # Only the entrance is published.
    assert [name for name, s in services.items() if s.get("ports")] == ["nginx"]
    builds = [s for s in services.values() if "build" in s]
    assert len(builds) == 1 and (ROOT / builds[0]["build"]["dockerfile"]).exists()


def test_compose_env_complete_and_secret_free(compose: dict) -> None:
    app_services = [
        s for s in compose["services"].values() if s["image"] == "tthc-assistant:latest"
    ]
    assert len(app_services) >= 5
    for service in app_services:
        env = service["environment"]
        missing = app_env_vars() - set(env)
        assert not missing, f"{_command(service)}: variables not set: {sorted(missing)}"
    env = app_services[0]["environment"]
    for name in SECRETS & set(env):
        # Secrets are taken from the operator's environment, never written here.
        assert re.fullmatch(r"\$\{" + name + r":[?-][^}]*\}", env[name]), name
    for url in ("PROCEDURES_DB_URL", "TRACKER_DB_URL"):
        assert "${POSTGRES_PASSWORD:?" in env[url]


def test_compose_ports_agree(compose: dict) -> None:
    services = compose["services"]
    nginx_env = services["nginx"]["environment"]
    rasa_command = _command(services["rasa"])
    assert "--port 5005" in rasa_command and "--auth-token" in rasa_command
    assert "rasa:5005" in nginx_env["TTHC_RASA_SERVERS"]
    web_port = services["web"]["environment"]["WEB_PORT"]
    assert nginx_env["TTHC_WEB_SERVER"] == f"web:{web_port}"
    assert services["nginx"]["ports"] == [f"{nginx_env['TTHC_PUBLIC_LISTEN']}:8000"]
    assert (
        services["rasa"]["environment"]["RASA_URL"]
        == f"http://nginx:{nginx_env['TTHC_RASA_LISTEN']}"
    )
    assert "http://actions:5055/webhook" in rasa_command
    assert "-p 5055" in _command(services["actions"])
    # The template's placeholders are exactly the variables given to nginx.
    template = (DEPLOY / "nginx" / "tthc.conf.template").read_text()
    placeholders = {
        m.group("braced") for m in string.Template.pattern.finditer(template) if m.group("braced")
    }
    assert placeholders == set(nginx_env)


def test_nginx_template_renders_balanced_config() -> None:
    site = render_nginx_site("127.0.0.1:8000", "127.0.0.1:5005", ["a:1", "b:2"], "w:3")
    assert "${" not in site
    assert "server a:1 max_fails=1" in site and "server b:2 max_fails=1" in site
    assert site.count("{") == site.count("}")
    assert "client_max_body_size 64k;" in site
    assert "proxy_next_upstream error timeout http_502 http_503;" in site
    assert "non_idempotent" not in site  # a POST is never sent twice


# --- Kubernetes ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> list[dict]:
    documents = yaml.safe_load_all((DEPLOY / "k8s" / "tthc.yaml").read_text(encoding="utf-8"))
    return [d for d in documents if d]


def _objects(k8s: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in k8s if d["kind"] == kind}


def _pod_specs(k8s: list[dict]) -> list[dict]:
    specs = [d["spec"]["template"]["spec"] for d in k8s if d["kind"] in ("Deployment", "Job")]
    specs += [
        d["spec"]["jobTemplate"]["spec"]["template"]["spec"] for d in k8s if d["kind"] == "CronJob"
    ]
    return specs


def test_k8s_objects_are_well_formed(k8s: list[dict]) -> None:
    for document in k8s:
        assert {"apiVersion", "kind", "metadata"} <= set(document), document
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", document["metadata"]["name"])
    deployments = _objects(k8s, "Deployment")
    assert {"actions", "rasa", "web"} <= set(deployments)
    assert deployments["rasa"]["spec"]["replicas"] >= 2
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{name}: selector does not match its pods"
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["image"] and container["resources"]["requests"], name
            assert "readinessProbe" in container and "livenessProbe" in container, name
            ports = {p["containerPort"] for p in container["ports"]}
            assert container["readinessProbe"]["httpGet"]["port"] in ports, name


def test_k8s_services_and_ingress_point_at_real_pods(k8s: list[dict]) -> None:
    deployments = _objects(k8s, "Deployment")
    services = _objects(k8s, "Service")
    for name, service in services.items():
        targets = [
            d
            for d in deployments.values()
            if service["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"service {name} selects {len(targets)} deployments"
        container_ports = {
            p["containerPort"]
            for c in targets[0]["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, name
    ingress = _objects(k8s, "Ingress")["tthc"]
    paths = {
        p["path"]: p["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert set(paths) == {"/webhooks/", "/"}
    for backend in paths.values():
        service_ports = {p["port"] for p in services[backend["name"]]["spec"]["ports"]}
        assert backend["port"]["number"] in service_ports
    assert (
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "64k"
    )
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
        assert "rasa" in _objects(k8s, kind)


def test_k8s_env_complete_and_secret_free(k8s: list[dict]) -> None:
    config = _objects(k8s, "ConfigMap")["tthc-config"]["data"]
    secret_doc = yaml.safe_load((DEPLOY / "k8s" / "secret.example.yaml").read_text())
    secret_keys = set(secret_doc["stringData"])
    assert not _objects(k8s, "Secret"), "secrets do not belong in the manifests"
    assert not (SECRETS - {"POSTGRES_PASSWORD"}) & set(config), "a secret is in the ConfigMap"
    missing = app_env_vars() - set(config) - secret_keys
    assert not missing, f"variables not set: {sorted(missing)}"
    for spec in _pod_specs(k8s):
        for container in spec["containers"]:
            sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
            assert sources == {"tthc-config", "tthc-secrets"}, container["name"]
            assert spec["securityContext"]["runAsNonRoot"] is True


def test_every_role_runs_an_existing_entry_point(compose: dict, k8s: list[dict]) -> None:
    commands = [
        _command(s) for s in compose["services"].values() if s["image"] == "tthc-assistant:latest"
    ]
    commands += [" ".join(c["command"]) for spec in _pod_specs(k8s) for c in spec["containers"]]
    for command in commands:
        for script in re.findall(r"scripts/\w+\.py", command):
            assert (ROOT / script).exists(), script
        for module in re.findall(r"-m ([\w.]+)", command):
            top = module.split(".")[0]
            if top in ("bot", "procedures_db", "webapp"):
                assert (ROOT / Path(*module.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*module.split("."))
                ).is_dir(), module


def test_prod_env_example_lists_every_variable() -> None:
    lines = (DEPLOY / "prod.env").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert app_env_vars() - {"RASA_URL", "TTHC_DATA_DIR", "PROCEDURES_OVERLAY_CSV"} <= set(values)
    for name in SECRETS & set(values):
        assert values[name] == "", f"{name} must come from the environment, not prod.env"


def test_rasa_store_classes_exist() -> None:
    from bot.production import stores

    for dotted in (TRACKER_STORE_CLASS, LOCK_STORE_CLASS):
        assert hasattr(stores, dotted.rsplit(".", 1)[1])
