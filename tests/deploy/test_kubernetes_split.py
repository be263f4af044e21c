"""deploy/k8s/overlays/split, as rendered (the `overlays` fixture of test_kubernetes.py): one API
and one worker per module, each hosting its own module with its own database login and only
its own secrets; peers found through each other's Services; the gateway routing exactly the
public prefixes of deploy/gateway's template, and never /internal/."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.test_kubernetes import (
    K8S,
    MODULES,
    ROOT,
    Objects,
    cli_args,
    container,
    find,
    overlays,
    pod_spec,
)
from tests.settings import SETTING_NAMES

__all__ = ["overlays"]  # the module-scoped fixture, rendered once for both files
# `location [=] PATH { proxy_pass http://UPSTREAM; }`: one public route.
ROUTE = re.compile(r"location\s+(=\s+)?(\S+)\s*\{\s*proxy_pass\s+http://(\w+);")


def routes(config: str) -> set[tuple[str, str]]:
    return {(f"{exact or ''}{path}", upstream) for exact, path, upstream in ROUTE.findall(config)}


def exactly(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def env(workload: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(workload)["env"]}


def secret_files(workload: dict[str, Any]) -> dict[str, str]:
    """The secret volume's files: path (the setting it sets) -> key in the Secret."""
    volumes = {volume["name"]: volume for volume in pod_spec(workload)["volumes"]}
    return {item["path"]: item["key"] for item in volumes["secrets"]["secret"]["items"]}


@pytest.mark.parametrize("module", MODULES)
def test_each_module_runs_its_own_api_and_worker(overlays: dict[str, Objects], module: str) -> None:
    objects = overlays["split"]
    secret_keys = {
        entry["secretKey"]
        for entry in find(objects, "ExternalSecret", "keystone-secrets")["spec"]["data"]
    }
    for role, command in (("api", "serve"), ("worker", "worker")):
        workload = exactly(objects, "Deployment", f"keystone-{role}-{module}")
        assert cli_args(container(workload)["command"])[0] == command
        assert env(workload) == {"APP_MODULES": module, "WORKER_MODULES": module}
        files = secret_files(workload)
        assert set(files) <= SETTING_NAMES, set(files) - SETTING_NAMES
        assert set(files.values()) <= secret_keys
        logins = {path for path in files if path.endswith("database_url")}
        assert logins == {f"{module}_database_url"}  # never the operator's DATABASE_URL
        assert files["service_token"] == f"{module}_service_token"
        assert ("jwt_private_key" in files) == (module == "users")
    service = exactly(objects, "Service", f"keystone-api-{module}")
    api = exactly(objects, "Deployment", f"keystone-api-{module}")
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"]["keystone.example/module"] == module
    hpa = exactly(objects, "HorizontalPodAutoscaler", f"keystone-api-{module}")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"keystone-api-{module}"


def test_peers_are_found_through_each_others_services(overlays: dict[str, Objects]) -> None:
    objects = overlays["split"]
    config = find(objects, "ConfigMap", "keystone-config")["data"]
    assert config["EVENT_TRANSPORT"] == "redis-streams"
    for module in MODULES:
        assert config[f"{module.upper()}_URL"] == f"http://keystone-api-{module}"
        exactly(objects, "Service", f"keystone-api-{module}")
        assert f"keystone-api-{module}" in config["TRUSTED_HOSTS"].split(",")
    assert not [
        o
        for o in objects
        if o["metadata"]["name"] in ("keystone-api", "keystone-worker") and o["kind"] != "Ingress"
    ]


def test_the_gateway_routes_the_templates_public_prefixes_only(
    overlays: dict[str, Objects],
) -> None:
    objects = overlays["split"]
    config = find(objects, "ConfigMap", "keystone-gateway")["data"]["nginx.conf"]
    assert config == (K8S / "overlays" / "split" / "nginx.conf").read_text()
    template = (ROOT / "deploy" / "gateway" / "nginx.conf.template").read_text()
    assert routes(config) == routes(template)
    assert {upstream for _, upstream in routes(config)} == set(MODULES)
    assert "/internal" not in "".join(path for path, _ in routes(config))
    for module in MODULES:
        assert f"server keystone-api-{module}:80 " in config
    gateway = exactly(objects, "Deployment", "keystone-gateway")
    listen = re.search(r"listen (\d+);", config)
    assert listen is not None
    assert container(gateway)["ports"][0]["containerPort"] == int(listen.group(1))
    ingress = exactly(objects, "Ingress", "keystone-api")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "keystone-gateway"


def test_only_the_gateway_is_open_to_the_ingress_controller(
    overlays: dict[str, Objects],
) -> None:
    policies = [o for o in overlays["split"] if o["kind"] == "NetworkPolicy"]
    from_ingress = [
        policy["spec"]["podSelector"]["matchLabels"]
        for policy in policies
        for rule in policy["spec"].get("ingress", [])
        for peer in rule["from"]
        if peer.get("namespaceSelector", {})
        .get("matchLabels", {})
        .get("kubernetes.io/metadata.name")
        == "ingress-nginx"
    ]
    assert from_ingress == [{"app.kubernetes.io/component": "gateway"}]
    services = exactly(overlays["split"], "NetworkPolicy", "keystone-services-ingress")
    callers = [
        peer.get("podSelector", {}).get("matchLabels")
        for peer in services["spec"]["ingress"][0]["from"]
    ]
    assert {"app.kubernetes.io/component": "gateway"} in callers
    assert {"app.kubernetes.io/component": "api"} in callers
