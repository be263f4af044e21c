"""The shipped Prometheus rules and configs, checked by their own tools offline: `promtool check`
and the rule unit tests (`promtool test rules`), `amtool check-config`; and every alert has a
runbook entry in docs/slo.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS = OBSERVABILITY / "prometheus"
RULE_FILES = sorted(PROMETHEUS.glob("*.rules.yml"))


def run(command: list[str], cwd: Path = ROOT) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def alerts() -> list[dict[str, object]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_rules_are_valid() -> None:
    promtool = require_tool("promtool", "prometheus")
    output = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert output.count("SUCCESS") == len(RULE_FILES)


def test_rule_unit_tests_pass() -> None:
    promtool = require_tool("promtool", "prometheus")
    run([promtool, "test", "rules", "tests/keystone.rules.test.yml"], cwd=PROMETHEUS)


def test_prometheus_config_is_valid() -> None:
    promtool = require_tool("promtool", "prometheus")
    # Syntax only: the token file it names exists where it is deployed, not here (the live
    # test runs Prometheus on this very config with a token file of its own).
    run([promtool, "check", "config", "--syntax-only", str(PROMETHEUS / "prometheus.yml")])


def test_alertmanager_config_is_valid_and_routes_pages_to_the_pager() -> None:
    amtool = require_tool("amtool", "prometheus-alertmanager")
    config = str(OBSERVABILITY / "alertmanager" / "alertmanager.yml")
    output = run([amtool, "check-config", config])
    assert "SUCCESS" in output
    routed = run([amtool, "config", "routes", "test", "--config.file", config, "severity=page"])
    assert routed.split() == ["keystone-pager"]
    routed = run([amtool, "config", "routes", "test", "--config.file", config, "severity=ticket"])
    assert routed.split() == ["keystone-tickets"]


def test_every_alert_names_its_severity_and_a_runbook_entry_that_exists() -> None:
    slo = (ROOT / "docs" / "slo.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", slo, flags=re.MULTILINE)
    }
    for alert in alerts():
        labels, annotations = alert["labels"], alert["annotations"]
        assert isinstance(labels, dict)
        assert isinstance(annotations, dict)
        assert labels["severity"] in ("page", "ticket"), alert["alert"]
        runbook = annotations["runbook"]
        assert runbook == f"docs/slo.md#{str(alert['alert']).lower()}", alert["alert"]
        assert runbook.split("#")[1] in anchors, f"docs/slo.md has no entry for {alert['alert']}"
