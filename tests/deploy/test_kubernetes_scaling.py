"""Scaling policies as rendered (the `overlays` fixture of test_kubernetes.py): every API and
worker Deployment, each module's in split, has a VerticalPodAutoscaler that only recommends
(updateMode "Off": the HPA scales the API on CPU, and a VPA resizing the same pods would fight
it) aimed at what runs its pods (prod: the Rollout, as the HPA is), and the validator generated
from the VPA's CRD refuses a broken one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_kubernetes import (
    RENDERED,
    Objects,
    check_custom_resources,
    crd_checker,
    find,
    overlays,
    pod_spec,
)

__all__ = ["crd_checker", "overlays"]  # the module-scoped fixtures, made once for all files
SCALED = ("keystone-api", "keystone-worker")  # the app's own Deployments, each module's too


def pod_owner(objects: Objects, deployment: dict[str, Any]) -> tuple[str, str]:
    """What runs a Deployment's pods: the Rollout that takes it over (workloadRef), else itself."""
    name = deployment["metadata"]["name"]
    for rollout in (o for o in objects if o["kind"] == "Rollout"):
        if rollout["spec"].get("workloadRef", {}).get("name") == name:
            return "Rollout", rollout["metadata"]["name"]
    return "Deployment", name


@pytest.mark.parametrize("overlay", RENDERED)
def test_every_api_and_worker_has_a_vpa_that_only_recommends(
    overlays: dict[str, Objects], overlay: str
) -> None:
    objects = overlays[overlay]
    vpas = [o for o in objects if o["kind"] == "VerticalPodAutoscaler"]
    deployments = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].startswith(SCALED)
    ]
    assert len(vpas) == len(deployments) == (6 if overlay == "split" else 2)
    for deployment in deployments:
        owner = pod_owner(objects, deployment)
        [vpa] = [
            v
            for v in vpas
            if (v["spec"]["targetRef"]["kind"], v["spec"]["targetRef"]["name"]) == owner
        ]
        assert vpa["spec"]["updatePolicy"]["updateMode"] == "Off"
        containers = {each["name"] for each in pod_spec(deployment)["containers"]}
        policies = vpa["spec"]["resourcePolicy"]["containerPolicies"]
        assert {policy["containerName"] for policy in policies} == containers
    if overlay == "prod":
        hpa = find(objects, "HorizontalPodAutoscaler", "keystone-api")["spec"]["scaleTargetRef"]
        api = find(objects, "VerticalPodAutoscaler", "keystone-api")["spec"]["targetRef"]
        assert (
            hpa
            == api
            == {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Rollout",
                "name": "keystone-api",
            }
        )


@pytest.mark.parametrize(
    ("breakage", "refusal"),
    [
        ("updateMode Sometimes", "updateMode must be equal to one of the allowed values"),
        ("no targetRef", "spec must have required property targetRef"),
    ],
)
def test_crd_validation_refuses_a_broken_vpa(
    overlays: dict[str, Objects], crd_checker: Path, breakage: str, refusal: str
) -> None:
    vpa = json.loads(json.dumps(find(overlays["prod"], "VerticalPodAutoscaler", "keystone-worker")))
    if breakage == "no targetRef":
        del vpa["spec"]["targetRef"]
    else:
        vpa["spec"]["updatePolicy"]["updateMode"] = "Sometimes"
    checked = check_custom_resources(crd_checker, [vpa])
    assert checked.returncode == 1
    assert refusal in checked.stdout
