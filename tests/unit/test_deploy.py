"""The deployment files say only what the bot understands: every environment name is a setting, every command
parses with the real CLI, the probes and the health check hit ``/healthz`` on the port the command serves, and the
containers run as a non-root user. ``.env.example`` lists every setting with its default."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import parser
from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
SETTINGS = {Settings.env_name(name) for name in Settings.model_fields}


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((path.name, doc))
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """``(workload name, pod spec)`` of the Deployment and of every CronJob."""
    specs = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in of_kind("Deployment")]
    specs += [(c["metadata"]["name"], c["spec"]["jobTemplate"]["spec"]["template"]["spec"]) for c in of_kind("CronJob")]
    return specs


def entrypoint() -> list[str]:
    """The Dockerfile's ENTRYPOINT (exec form)."""
    line = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("ENTRYPOINT "))
    return list(yaml.safe_load(line.removeprefix("ENTRYPOINT ")))


def cli_args(container: dict[str, Any]) -> list[str]:
    """What the container runs, as ``datastory`` arguments (the image's entrypoint is ``datastory``)."""
    command = list(container.get("command") or entrypoint()) + list(container.get("args") or [])
    assert command[0] == "datastory", command
    return command[1:]


def parses(args: list[str]) -> Any:
    """The CLI's own parser accepts ``args`` (argparse exits on anything it does not know)."""
    try:
        return parser().parse_args(args)
    except SystemExit as exc:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"`datastory {shlex.join(args)}` does not parse") from exc


def test_every_environment_name_is_a_setting() -> None:
    names: set[str] = set()
    for _, spec in pod_specs():
        for container in spec["containers"]:
            names |= {env["name"] for env in container.get("env", [])}
    for config_map in of_kind("ConfigMap"):
        names |= set(config_map["data"])
    for secret in of_kind("Secret"):
        names |= set(secret["stringData"])
    assert names and names <= SETTINGS, names - SETTINGS


def test_every_secret_reference_is_a_key_of_the_example_secret() -> None:
    [secret] = of_kind("Secret")
    for workload, spec in pod_specs():
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"], workload
                    assert ref["key"] in secret["stringData"] and ref["key"] == env["name"], (workload, ref)
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in {c["metadata"]["name"] for c in of_kind("ConfigMap")}


def test_secrets_live_only_in_the_secret() -> None:
    secret_names = {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "OPENAI_API_KEY",
                    "DATASTORY_DATABASE_URL"}
    for config_map in of_kind("ConfigMap"):
        assert not secret_names & set(config_map["data"])
    for _, spec in pod_specs():
        for container in spec["containers"]:
            for env in container.get("env", []):
                if env["name"] in secret_names:
                    assert "value" not in env, env["name"]


def test_the_deployment_serves_http_with_replicas_and_probes_on_healthz() -> None:
    [deployment] = of_kind("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = parses(cli_args(container))
    assert (args.command, args.http) == ("run", True)
    [port] = container["ports"]
    assert port["containerPort"] == args.port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/healthz" and check["port"] in (port["name"], port["containerPort"]), probe
    assert pod["terminationGracePeriodSeconds"] > Settings.model_fields["shutdown_grace_seconds"].default
    [service] = of_kind("Service")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_cronjobs_run_the_sweep_and_the_due_digests() -> None:
    commands = {}
    for cron in of_kind("CronJob"):
        [container] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        args = parses(cli_args(container))
        commands[(args.command, getattr(args, "digest_command", None))] = cron["spec"]["schedule"]
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
        assert len(cron["spec"]["schedule"].split()) == 5
    assert set(commands) == {("sweep", None), ("digest", "run-due")}


def test_everything_runs_as_the_images_unprivileged_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER "))
    uid = int(user.split(":")[0])
    assert uid != 0
    for workload, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, workload
        assert spec["securityContext"]["runAsUser"] == uid, workload
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, workload


def test_the_image_checks_its_health_where_its_command_serves() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert sum(line.startswith("FROM ") for line in lines) >= 2  # multi-stage
    cmd = yaml.safe_load(next(line for line in lines if line.startswith("CMD ")).removeprefix("CMD "))
    args = parses(list(cmd))
    assert (args.command, args.http) == ("run", True)
    health = next(i for i, line in enumerate(lines) if line.startswith("HEALTHCHECK "))
    assert f"http://127.0.0.1:{args.port}/healthz" in lines[health + 1]
    assert f"EXPOSE {args.port}" in lines


def test_compose_runs_the_bot_with_postgresql_on_a_volume_and_reads_dotenv() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    bot, db = compose["services"]["bot"], compose["services"]["db"]
    assert bot["env_file"] == ".env"
    assert set(bot["environment"]) <= SETTINGS
    assert bot["environment"]["DATASTORY_DATABASE_URL"].startswith("postgresql://") and "@db:5432/" in \
        bot["environment"]["DATASTORY_DATABASE_URL"]
    args = parses(list(bot["command"]))
    assert (args.command, args.http) == ("run", True)
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    [volume] = db["volumes"]
    assert volume.split(":")[0] in compose["volumes"] and volume.endswith(":/var/lib/postgresql/data")
    assert db["image"].startswith("postgres:")


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert name not in values, f"{name} twice"
            values[name] = value
    return values


def test_env_example_lists_every_setting() -> None:
    listed = env_example()
    missing = sorted(SETTINGS - listed.keys())
    assert not missing, f"add to .env.example: {', '.join(f'{m}=<default>' for m in missing)}"
    assert not listed.keys() - SETTINGS, listed.keys() - SETTINGS


def test_env_example_values_are_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    from_file = Settings(_env_file=tmp_path / ".env")  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for name in Settings.model_fields:
        assert getattr(from_file, name) == getattr(defaults, name), Settings.env_name(name)


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "")
    monkeypatch.setenv("DATASTORY_IDLE_MINUTES", "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.slack_app_token is None and settings.idle_minutes == 20


def test_secrets_and_local_state_are_ignored_by_git_and_docker() -> None:
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in gitignore and "datastory.db" in gitignore and "datastory-out/" in gitignore
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in dockerignore  # everything excluded, then what the image needs added back
    assert not any(line.startswith("!") and (".env" in line or ".db" in line) for line in dockerignore)
