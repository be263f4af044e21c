"""deploy/k8s/logging, as rendered: the log shipper (DaemonSet) and aggregator (StatefulSet), each
valid Kubernetes (strictly), each running a configuration rsyslog itself accepts (`rsyslogd -N1`
on the ConfigMap's files with the pod's environment), the shipper tailing the files the kubelet
names after every Keystone pod of every overlay and none of the logging pods', and reaching the
aggregator's Service on its port through the NetworkPolicies. The live path is
tests/observability/test_log_shipping.py."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.test_kubernetes import (
    K8S,
    KUBERNETES_VERSION,
    RENDERED,
    Objects,
    container,
    overlays,
    pod_spec,
    render_kustomization,
)
from tests.observability.logstack import exactly, pod_here, rsyslog_check

__all__ = ["overlays"]  # the module-scoped fixture of test_kubernetes.py, rendered once
LOGGING_CONFIG = K8S.parent / "observability" / "logging"
CONFIG_MOUNT = "/etc/keystone-logging"
# What only the cluster knows: the node's name (from the pod's spec), here any.
FROM_THE_CLUSTER = {"NODE_NAME": "node-a"}
CONTAINER_ID = "0" * 64
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


@pytest.fixture(scope="module")
def logging() -> Objects:
    return render_kustomization(K8S / "logging")


def env_of(workload: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container(workload)["env"]}


def test_logging_objects_are_valid_kubernetes(logging: Objects) -> None:
    for manifest in logging:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    kinds = {manifest["kind"] for manifest in logging}
    assert {
        "Namespace",
        "DaemonSet",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "NetworkPolicy",
    } <= kinds
    assert {manifest["metadata"].get("namespace", "keystone-logging") for manifest in logging} == {
        "keystone-logging"
    }


def test_the_config_maps_hold_the_shipped_files(logging: Objects) -> None:
    for name, files in (
        ("log-shipper", {"shipper.conf", "cri.rulebase"}),
        ("log-aggregator", {"aggregator.conf", "loki_push.py"}),
    ):
        [config] = [
            o
            for o in logging
            if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(f"{name}-")
        ]
        assert config["data"] == {file: (LOGGING_CONFIG / file).read_text() for file in files}


@pytest.mark.parametrize(
    ("kind", "name", "given"),
    [
        ("DaemonSet", "log-shipper", {**FROM_THE_CLUSTER, "LOG_AGGREGATOR_HOST": "127.0.0.1"}),
        ("StatefulSet", "log-aggregator", {}),
    ],
)
def test_rsyslog_accepts_what_each_pod_runs(
    logging: Objects, tmp_path: Path, kind: str, name: str, given: dict[str, str]
) -> None:
    pod = pod_here(logging, kind, name, tmp_path, given)
    checked = rsyslog_check(pod)
    assert checked.returncode == 0, checked.stderr
    assert "End of config validation run" in checked.stderr


def test_rsyslogs_check_refuses_a_broken_configuration(logging: Objects, tmp_path: Path) -> None:
    pod = pod_here(logging, "DaemonSet", "log-shipper", tmp_path, FROM_THE_CLUSTER)
    rulebase = pod.folder(CONFIG_MOUNT) / "cri.rulebase"
    rulebase.write_text(rulebase.read_text().replace('"type":"repeat"', '"type":"repeats"'))
    checked = rsyslog_check(pod)
    assert checked.returncode != 0
    assert "cri.rulebase" in checked.stderr


def pod_names(workload: dict[str, Any]) -> str:
    """A pod of the workload as its controller names it (the random parts made up)."""
    name = workload["metadata"]["name"]
    return {
        "Deployment": f"{name}-7c9d8b6f4-x2x7q",
        "StatefulSet": f"{name}-0",
        "DaemonSet": f"{name}-x2x7q",
        "Job": f"{name}-x2x7q",
        "CronJob": f"{name}-29424960-x2x7q",
    }[workload["kind"]]


def kubelet_log_files(objects: Objects) -> set[str]:
    """/var/log/containers/<pod>_<namespace>_<container>-<id>.log of every workload's pods."""
    files = set()
    for workload in (o for o in objects if o["kind"] in WORKLOAD_KINDS):
        spec = workload["spec"]
        template = (spec["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else spec)[
            "template"
        ]
        namespace = workload["metadata"].get("namespace", "default")
        for each in template["spec"]["containers"]:
            pod = pod_names(workload)
            files.add(f"/var/log/containers/{pod}_{namespace}_{each['name']}-{CONTAINER_ID}.log")
    return files


def test_the_shipper_tails_every_keystone_pod_and_never_its_own(
    logging: Objects, overlays: dict[str, Objects]
) -> None:
    pattern = env_of(exactly(logging, "DaemonSet", "log-shipper"))["LOG_FILES"]
    keystone = set().union(*(kubelet_log_files(overlays[overlay]) for overlay in RENDERED))
    assert len(keystone) >= 10
    assert [file for file in keystone if not fnmatch.fnmatchcase(file, pattern)] == []
    own = kubelet_log_files(logging)
    assert own
    assert [file for file in own if fnmatch.fnmatchcase(file, pattern)] == []


def test_the_shipper_reaches_the_aggregators_service(logging: Objects) -> None:
    shipper = exactly(logging, "DaemonSet", "log-shipper")
    aggregator = exactly(logging, "StatefulSet", "log-aggregator")
    service = exactly(logging, "Service", env_of(shipper)["LOG_AGGREGATOR_HOST"])
    [port] = service["spec"]["ports"]
    assert str(port["port"]) == env_of(shipper)["LOG_AGGREGATOR_PORT"]
    [listener] = container(aggregator)["ports"]
    assert port["targetPort"] == listener["name"]
    assert str(listener["containerPort"]) == env_of(aggregator)["LOG_AGGREGATOR_PORT"]
    assert service["spec"]["selector"].items() <= pod_labels(aggregator).items()
    ingress = exactly(logging, "NetworkPolicy", "log-aggregator-ingress")["spec"]
    [rule] = ingress["ingress"]
    [source] = rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= pod_labels(shipper).items()
    assert rule["ports"] == [{"port": listener["containerPort"], "protocol": "TCP"}]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def test_logging_pods_hold_only_what_they_need(logging: Objects) -> None:
    for kind, name in (("DaemonSet", "log-shipper"), ("StatefulSet", "log-aggregator")):
        workload = exactly(logging, kind, name)
        assert pod_spec(workload)["automountServiceAccountToken"] is False
        assert container(workload)["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
    aggregator = pod_spec(exactly(logging, "StatefulSet", "log-aggregator"))
    assert aggregator["securityContext"]["runAsNonRoot"] is True
    shipper = exactly(logging, "DaemonSet", "log-shipper")
    host_paths = {
        volume["name"]: volume["hostPath"]["path"]
        for volume in pod_spec(shipper)["volumes"]
        if "hostPath" in volume
    }
    mounts = {mount["name"]: mount for mount in container(shipper)["volumeMounts"]}
    assert host_paths == {"node-logs": "/var/log", "state": "/var/lib/keystone-log-shipper"}
    assert mounts["node-logs"]["readOnly"] is True
    assert os.path.commonpath([env_of(shipper)["LOG_FILES"], "/var/log"]) == "/var/log"
