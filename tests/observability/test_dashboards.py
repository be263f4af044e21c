"""The Grafana dashboards are what dashboards.py generates, and shaped as Grafana loads them:
unique ids, a query in every panel, every query on the `job` variable and the provisioned
datasource. (Their queries are evaluated against scraped data in test_live_stack.py.)"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "observability" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"


def generated() -> dict[str, str]:
    module = runpy.run_path(str(GRAFANA / "dashboards.py"))
    rendered: dict[str, str] = module["rendered"]()
    return rendered


def test_committed_dashboards_are_the_generated_ones() -> None:
    expected = generated()
    committed = {path.name: path.read_text() for path in DASHBOARDS.glob("*.json")}
    assert committed == expected, "run `python deploy/observability/grafana/dashboards.py`"
    # service overview (RED), checkout saga and events, database and Redis, cost
    assert len(committed) == 4


def test_dashboards_are_shaped_as_grafana_loads_them() -> None:
    dashboards: list[dict[str, Any]] = [
        json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))
    ]
    assert len({dashboard["uid"] for dashboard in dashboards}) == len(dashboards)
    for dashboard in dashboards:
        panels = dashboard["panels"]
        assert len({panel["id"] for panel in panels}) == len(panels)
        for panel in panels:
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
            for target in panel["targets"]:
                assert 'job="$job"' in target["expr"], (panel["title"], target["expr"])


def test_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/keystone.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/keystone")
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [source] = sources["datasources"]
    assert source["type"] == "prometheus"
