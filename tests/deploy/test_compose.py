"""The deployment files, checked as far as a machine without a Docker engine allows.

`docker-compose config` (Debian's docker-compose, no engine needed) validates and resolves each
variant; the resolved files are then held against the code: every MMSEARCH_* variable is a setting,
every service command is a real CLI command with real options, and the health checks are real routes
that answer (the API's check runs, verbatim, against a live API).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.settings import Settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {
    "gpu": ["docker-compose.yml"],
    "cpu": ["docker-compose.cpu.yml"],
    "cluster": ["docker-compose.yml", "docker-compose.cluster.yml"],
}
SETTING_NAMES = {f"MMSEARCH_{name.upper()}" for name in Settings.model_fields}


def resolved(variant: str) -> dict:
    """The variant as docker-compose resolves it, with .env.example as the environment file."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (Debian package `docker-compose`; .ci/run installs it)")
    files = [arg for name in VARIANTS[variant] for arg in ("-f", name)]
    run = subprocess.run(
        [binary, "--env-file", ".env.example", *files, "config"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)


@pytest.fixture(scope="module", params=list(VARIANTS))
def compose(request) -> tuple[str, dict]:
    return request.param, resolved(request.param)


def test_every_variant_has_qdrant_api_and_ui_in_order(compose):
    variant, config = compose
    services = config["services"]
    assert {"qdrant", "api", "ui"} <= set(services)
    assert services["api"]["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert services["ui"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert all("healthcheck" in s for s in services.values())
    assert any(v.startswith("qdrant-storage") for v in _volumes(services["qdrant"]))
    assert {"/data", "/cache/huggingface"} <= {v.split(":")[1] for v in _volumes(services["api"])}
    gpu = services["api"].get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    if variant == "cpu":
        assert gpu is None and services["api"]["environment"]["MMSEARCH_DEVICE"] == "cpu"
        assert "whl/cpu" in services["api"]["build"]["args"]["TORCH_INDEX_URL"]
    else:
        assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_the_cluster_has_three_nodes_and_a_layout_that_survives_one_down():
    services = resolved("cluster")["services"]
    nodes = [name for name in services if name.startswith("qdrant")]
    assert len(nodes) == 3
    assert all(services[n]["environment"]["QDRANT__CLUSTER__ENABLED"] == "true" for n in nodes)
    assert all("--bootstrap" in services[n]["command"] for n in nodes if n != "qdrant")
    storage = {v.split(":")[0] for n in nodes for v in _volumes(services[n])}
    assert len(storage) == 3  # each node its own volume
    env = services["api"]["environment"]
    settings = Settings(
        _env_file=None,
        **{k[len("MMSEARCH_") :].lower(): v for k, v in env.items() if k.startswith("MMSEARCH_") and v},
    )
    assert settings.qdrant_replication_factor >= 2  # every shard on two nodes: one may fail
    assert settings.qdrant_shard_number >= len(nodes)
    assert settings.qdrant_write_consistency_factor < settings.qdrant_replication_factor  # writes go on
    assert settings.qdrant_read_consistency in ("majority", "quorum", "1")


def test_every_mmsearch_variable_is_a_setting(compose):
    _, config = compose
    for name, service in config["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith("MMSEARCH_"):
                assert key in SETTING_NAMES, f"{name}: {key} is not a setting"
        if name in ("api", "ui"):
            env = {
                k[len("MMSEARCH_") :].lower(): v
                for k, v in service["environment"].items()
                if k.startswith("MMSEARCH_")
            }
            Settings(_env_file=None, **{k: v for k, v in env.items() if v != ""})  # the values parse too


def test_env_example_names_only_settings_and_compose_variables():
    text = (ROOT / ".env.example").read_text()
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.M)
    assert names
    for name in names:
        if name.startswith("MMSEARCH_"):
            assert name in SETTING_NAMES, f".env.example: {name} is not a setting"
    files = {"deploy/services.yml", *(f for names in VARIANTS.values() for f in names)}
    compose_text = "".join((ROOT / f).read_text() for f in sorted(files))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    assert used - {"MMSEARCH_QDRANT_API_KEY"} <= set(names) | SETTING_NAMES | {"HF_HUB_OFFLINE"}


def test_service_commands_are_real_cli_commands_and_options(compose):
    import typer

    from app.cli.main import cli

    group = typer.main.get_command(cli)
    _, config = compose
    for name in ("api", "ui"):
        command, *args = config["services"][name]["command"]
        assert command in group.commands, f"{name}: no `mmsearch {command}`"
        options = {
            opt for param in group.commands[command].params for opt in param.opts + param.secondary_opts
        }
        for arg in args:
            if arg.startswith("--"):
                assert arg in options, f"{name}: `mmsearch {command}` has no {arg}"


def test_health_checks_name_real_routes(compose):
    from app.api.main import create_app

    _, config = compose
    api_check = " ".join(config["services"]["api"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:8000(/[a-z_/]+)", api_check).group(1)
    routes = create_app(Settings(_env_file=None)).openapi()["paths"]
    assert path == "/ready" and "get" in routes[path]
    ui_check = " ".join(config["services"]["ui"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8501/_stcore/health" in ui_check  # what tests/ui polls on the real UI


@pytest.mark.parametrize("with_key", [True, False])
def test_the_api_health_check_runs_verbatim_against_a_live_api(live_api, with_key):
    check = resolved("gpu")["services"]["api"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    code = check[3].replace("http://127.0.0.1:8000", live_api.url)
    env = {"MMSEARCH_API_KEY": live_api.api_key} if with_key else {}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    if with_key:
        assert run.returncode == 0, run.stderr
    else:  # a wrong or missing key must not pass as healthy
        assert run.returncode != 0 and "HTTP Error 401" in run.stderr


def test_dockerfile_has_a_cached_dependency_layer_a_non_root_user_and_no_secrets():
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [ln for ln in lines if ln and not ln.startswith("#")]
    first_code_copy = next(i for i, ln in enumerate(instructions) if ln.startswith("COPY core"))
    pyproject_copy = instructions.index("COPY pyproject.toml ./")
    deps = next(i for i, ln in enumerate(instructions) if ln.startswith("RUN python - <<'PY'"))
    assert pyproject_copy < deps < first_code_copy  # code changes reuse the dependency layer
    user = next(i for i, ln in enumerate(instructions) if ln.startswith("USER "))
    assert instructions[user] != "USER root" and user > first_code_copy
    secret = re.compile(r"^(ENV|ARG)\b.*(API_KEY|SECRET|TOKEN|PASSWORD)", re.I)
    assert not [ln for ln in instructions if secret.search(ln)]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", ".venv", "data"} <= set(ignored)


def test_the_dockerfile_dependency_list_is_what_pyproject_declares():
    from packaging.requirements import Requirement

    text = (ROOT / "Dockerfile").read_text()
    script = text.split("<<'PY'", 1)[1].split("\nPY\n", 1)[0].split("\n", 1)[1]
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    requirements = (
        [Requirement(line) for line in run.stdout.split() if line]
        if False
        else [Requirement(line) for line in run.stdout.splitlines() if line]
    )
    names = {r.name for r in requirements}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"fastapi", "qdrant-client", "streamlit", "transformers"} <= names
    assert not names & {"pytest", "ruff", "playwright"}  # test tools stay out of the image
    assert len(requirements) == len(project["dependencies"]) + sum(
        len(project["optional-dependencies"][e]) for e in ("server", "index", "ui")
    )


def _volumes(service: dict) -> list[str]:
    out = []
    for v in service.get("volumes", []):
        out.append(v if isinstance(v, str) else f"{v.get('source')}:{v['target']}")
    return out


def test_the_image_ships_libreoffice_and_the_ocr_engines_system_libraries():
    text = (ROOT / "Dockerfile").read_text()
    install = next(block for block in text.split("\nRUN ") if "apt-get install" in block)
    packages = set(install.replace("\\\n", " ").split())
    assert {
        "libgl1",
        "libglib2.0-0",
        "libreoffice-writer",
        "libreoffice-impress",
        "libreoffice-calc",
    } <= packages
    assert "--no-install-recommends" in packages and "rm -rf /var/lib/apt/lists/*" in install
    assert text.index("apt-get install") < text.index("USER mmsearch")  # installed as root, before the drop
