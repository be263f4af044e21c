"""checkov's policy scan, offline (`--skip-download`): its Kubernetes checks over every overlay as
rendered (the `overlays` fixture of test_kubernetes.py) and the logging stack, its Dockerfile
checks over the app's and rsyslog's Dockerfiles. No check may fail: a finding is fixed, or
accepted on its object with its reason (deploy/k8s/base/accepted-findings, the manifests'
`checkov.io/skipN` annotations, the Dockerfiles' `checkov:skip` comments). checkov runs from an
environment of its own, locked in deploy/checkov (its dependencies conflict with the app's)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.images import CACHE
from tests.deploy.test_kubernetes import (
    K8S,
    RENDERED,
    ROOT,
    Objects,
    find,
    overlays,
    render_kustomization,
)

__all__ = ["overlays"]  # the module-scoped fixture of test_kubernetes.py, rendered once
LOCK = ROOT / "deploy" / "checkov" / "requirements.txt"
DOCKERFILES = (ROOT / "Dockerfile", ROOT / "deploy" / "observability" / "logging" / "Dockerfile")
Report = dict[str, Any]


@pytest.fixture(scope="module")
def checkov() -> Path:
    """The python of checkov's locked environment, made once per lock file in a cache outside
    the repository (built aside, then moved in, so a concurrent session never sees half of it)."""
    target = CACHE / f"checkov-{hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]}"
    if not (target / "bin" / "python").exists():
        uv = str(ROOT / ".tools" / "bin" / "uv")  # `make install` puts it there
        building = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        install = [uv, "pip", "install", "--quiet", "--python", str(building / "bin" / "python")]
        for command in (
            [uv, "venv", "--quiet", "--python", sys.executable, str(building)],
            [*install, "--require-hashes", "--requirement", str(LOCK)],
        ):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr[-2000:]
        try:
            building.rename(target)
        except OSError:  # another session finished first
            shutil.rmtree(building)
    return target / "bin" / "python"


def scan(python: Path, files: list[Path]) -> list[Report]:
    """checkov's reports (one per framework) on `files`; a venv moved into place runs as
    `python -m`, its scripts' shebangs name where it was built."""
    command = [str(python), "-m", "checkov.main", "--skip-download", "--output", "json"]
    command += ["--framework", "kubernetes", "dockerfile"]
    for file in files:
        command += ["--file", str(file)]
    checked = subprocess.run(command, capture_output=True, text=True, check=False)
    assert checked.returncode in (0, 1), checked.stderr[-2000:]
    reports = json.loads(checked.stdout)
    return reports if isinstance(reports, list) else [reports]


def write(folder: Path, name: str, objects: Objects) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return path


def failures(reports: list[Report]) -> list[str]:
    return [
        f"{failed['check_id']} {failed['resource']} ({failed['check_name']})"
        for report in reports
        for failed in report["results"]["failed_checks"]
    ]


def test_no_policy_check_fails_and_every_skip_says_why(
    overlays: dict[str, Objects], checkov: Path, tmp_path: Path
) -> None:
    files = [write(tmp_path, overlay, overlays[overlay]) for overlay in RENDERED]
    files.append(write(tmp_path, "logging", render_kustomization(K8S / "logging")))
    reports = scan(checkov, [*files, *DOCKERFILES])
    assert {report["check_type"] for report in reports} == {"kubernetes", "dockerfile"}
    assert failures(reports) == []
    for report in reports:
        assert report["summary"]["passed"] > 0
        for skipped in report["results"]["skipped_checks"]:
            reason = skipped["check_result"].get("suppress_comment", "")
            assert len(reason) > 20, (skipped["check_id"], skipped["resource"], reason)


def test_a_finding_without_its_reason_fails_the_scan(
    overlays: dict[str, Objects], checkov: Path, tmp_path: Path
) -> None:
    """The worker without its annotations: the checks they skip fail, so the skips are what
    keep the scan green, object by object."""
    worker = json.loads(json.dumps(find(overlays["staging"], "Deployment", "keystone-worker")))
    del worker["metadata"]["annotations"]
    found = failures(scan(checkov, [write(tmp_path, "worker", [worker])]))
    assert {failure.split()[0] for failure in found} >= {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_11"}
