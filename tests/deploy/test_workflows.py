"""The GitHub Actions workflows, as GitHub would read them: valid against the workflow schema
(check-jsonschema's vendored SchemaStore schema, offline), and pointing at what exists here: CI
runs .ci/run, the release builds every image the manifests run (the app's, the backup's,
rsyslog's) and deploys with the canary strategy and rolls back, the Kubernetes deploy
applies overlays that exist and waits for the migration Job the manifests define."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_kubernetes import render_kustomization

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
# The repository the images are named after (ghcr.io/keystone/keystone in every overlay).
REPOSITORY = "keystone/keystone"


def load(name: str) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    return workflow


def test_every_workflow_is_valid() -> None:
    assert [path.name for path in WORKFLOWS] == ["ci.yml", "deploy.yml", "release.yml"]
    checked = subprocess.run(
        [
            str(CHECK_JSONSCHEMA),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_refuses_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    broken.write_text(
        (ROOT / ".github" / "workflows" / "ci.yml").read_text().replace("runs-on", "run-on")
    )
    checked = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 1


def steps(workflow: dict[str, Any], job: str) -> str:
    return "\n".join(step.get("run", "") for step in workflow["jobs"][job]["steps"])


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash .ci/run" in steps(load("ci.yml"), "test")


def test_release_deploys_a_canary_and_rolls_back() -> None:
    release = load("release.yml")
    build = next(s for s in release["jobs"]["image"]["steps"] if s.get("id") == "build")
    assert build["with"]["push"] is True
    assert build["with"]["provenance"]
    assert "cosign sign" in steps(release, "image")
    deploy = release["jobs"]["deploy-fly"]["steps"]
    commands = steps(release, "deploy-fly")
    assert "--strategy canary" in commands
    assert "/readyz" in commands
    rollback = next(step for step in deploy if step.get("name", "").startswith("Roll back"))
    assert rollback["if"].startswith("failure()")


@pytest.mark.parametrize("overlay", ["staging", "prod"])
def test_kubernetes_deploy_knows_the_overlays(overlay: str) -> None:
    deploy = load("deploy.yml")
    options = deploy[True]["workflow_dispatch"]["inputs"]["environment"]["options"]  # YAML 1.1: on
    assert overlay in options
    assert (ROOT / "deploy" / "k8s" / "overlays" / overlay / "kustomization.yaml").exists()
    commands = steps(deploy, "deploy")
    job = (ROOT / "deploy" / "k8s" / "base" / "migrate-job.yaml").read_text()
    assert "name: keystone-migrate" in job
    assert "kubectl wait job/keystone-migrate" in commands
    assert "kubectl argo rollouts undo keystone-api" in commands


def test_release_builds_and_signs_the_backup_image() -> None:
    release = load("release.yml")
    backup = next(s for s in release["jobs"]["image"]["steps"] if s.get("id") == "build-backup")
    assert backup["with"]["target"] == "backup"
    assert "FROM runtime AS backup" in (ROOT / "Dockerfile").read_text()
    assert "steps.build-backup.outputs.digest" in steps(release, "image")
    assert release["jobs"]["image"]["outputs"]["backup-digest"]


def test_release_builds_the_image_the_logging_stack_runs(tmp_path: Path) -> None:
    """The rsyslog image deploy/k8s/logging runs is one the release pushes (with provenance, and
    signed): its tag step run as the runner would, its tags expanded, compared with the images
    of the rendered logging manifests."""
    release = load("release.yml")
    image_steps = release["jobs"]["image"]["steps"]
    [tag_step] = [s for s in image_steps if s.get("id") == "rsyslog"]
    output = tmp_path / "github_output"
    env = {"GITHUB_OUTPUT": str(output), "PATH": "/usr/bin:/bin"}
    subprocess.run(["bash", "-e", "-c", tag_step["run"]], cwd=ROOT, env=env, check=True)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    build = next(s for s in image_steps if s.get("id") == "build-rsyslog")
    assert build["with"]["push"] is True
    assert build["with"]["provenance"]
    assert (ROOT / build["with"]["context"] / "Dockerfile").exists()
    github = {
        "env.IMAGE": release["env"]["IMAGE"].replace("${{ github.repository }}", REPOSITORY),
        "steps.rsyslog.outputs.tag": outputs["tag"],
        "github.sha": "0" * 40,
    }
    pushed = set()
    for tag in build["with"]["tags"].splitlines():
        for name, value in github.items():
            tag = tag.replace("${{ %s }}" % name, value)  # noqa: UP031 - GitHub's syntax
        pushed.add(tag)
    logging = render_kustomization(ROOT / "deploy" / "k8s" / "logging")
    runs = {each["image"] for manifest in logging for each in _containers(manifest)}
    assert runs == {f"ghcr.io/{REPOSITORY}-rsyslog:{outputs['tag']}"}
    assert runs <= pushed
    assert "steps.build-rsyslog.outputs.digest" in steps(release, "image")  # signed
    assert release["jobs"]["image"]["outputs"]["rsyslog-digest"]


@pytest.mark.parametrize("overlay", ["staging", "prod"])
def test_kubernetes_deploy_pins_both_images_to_the_release(overlay: str, tmp_path: Path) -> None:
    """The deploy's pinning step, run as the runner would (bash, kubectl on PATH), on a copy of
    deploy/k8s: every container runs the release's app or backup image, by digest."""
    digests = {"digest": "sha256:" + "a" * 64, "backup_digest": "sha256:" + "b" * 64}
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    [pin] = [s for s in load("deploy.yml")["jobs"]["deploy"]["steps"] if "Pin" in s.get("name", "")]
    script = pin["run"]
    for name, digest in digests.items():
        script = script.replace("${{ inputs.%s }}" % name, digest)  # noqa: UP031 - GitHub's syntax
    env = {
        "PATH": f"{CHECK_JSONSCHEMA.parent}:/usr/bin:/bin",  # the dev dependency's kubectl
        "OVERLAY": f"deploy/k8s/overlays/{overlay}",
        "RUNNER_TEMP": str(tmp_path),
    }
    subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, check=True)
    manifests = yaml.safe_load_all((tmp_path / "manifests.yaml").read_text())
    images = {each["image"] for manifest in manifests if manifest for each in _containers(manifest)}
    assert images == {
        f"ghcr.io/keystone/keystone@{digests['digest']}",
        f"ghcr.io/keystone/keystone-backup@{digests['backup_digest']}",
    }


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest.get("spec", {})
    template = spec.get("jobTemplate", {}).get("spec", {}).get("template") or spec.get("template")
    if not isinstance(template, dict) or "spec" not in template:
        return []
    containers: list[dict[str, Any]] = template["spec"].get("containers", [])
    return containers
