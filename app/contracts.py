"""The contracts between modules, as committed snapshots under docs/contracts/.

Each module's internal API (the OpenAPI document of `/internal/<module>/...`, versioned by the
module's `internal.API_VERSION`) and every integration event it declares (the JSON Schema of
each `event_type` at each `event_version`) are written to docs/contracts/<module>/. A change to
a contract must update its snapshot (`python -m app.cli contracts --write`); an incompatible
change (app/core/compatibility/) must also bump the version, and the writer refuses it
otherwise. tests/contracts/test_snapshots.py fails on any difference.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.openapi.utils import get_openapi

from app.core.compatibility.openapi import openapi_changes
from app.core.compatibility.schemas import Direction, Incompatibility, schema_changes
from app.core.config import ALL_MODULES
from app.core.events.base import IntegrationEvent
from app.core.openapi import describe_problems
from app.core.security.services import SERVICE_TOKEN_HEADER

SNAPSHOTS = Path(__file__).resolve().parents[1] / "docs" / "contracts"
REFRESH = "python -m app.cli contracts --write"


@dataclass(frozen=True)
class Contract:
    name: str
    path: Path
    version: int
    document: dict[str, Any]
    changes: Callable[[dict[str, Any], dict[str, Any]], list[Incompatibility]]
    version_of: Callable[[dict[str, Any]], int]
    bump: str

    def unbumped_breaks(self, snapshot: dict[str, Any]) -> list[Incompatibility]:
        """What breaks readers or writers of the snapshot, unless the version was bumped."""
        if snapshot == self.document or self.version > self.version_of(snapshot):
            return []
        return self.changes(snapshot, self.document)

    def verdict(self, snapshot: dict[str, Any]) -> str | None:
        """None when the snapshot is the contract, else what to do about the difference."""
        if snapshot == self.document:
            return None
        if broken := self.unbumped_breaks(snapshot):
            listed = "".join(f"\n  - {change}" for change in broken)
            return f"{self.name}: incompatible change without a version bump ({self.bump}):{listed}"
        return f"{self.name}: changed; refresh its snapshot with `{REFRESH}`"


def internal_api(module: str, root: Path = SNAPSHOTS) -> Contract:
    internal = importlib.import_module(f"app.modules.{module}.internal")
    version: int = internal.API_VERSION
    document = get_openapi(
        title=f"Keystone {module}: internal API",
        version=str(version),
        description=f"What {module} serves other Keystone services; never routed by the gateway.",
        routes=internal.router.routes,
    )
    describe_problems(document, rate_limited=False)
    document["components"]["securitySchemes"] = {
        "serviceToken": {"type": "apiKey", "in": "header", "name": SERVICE_TOKEN_HEADER}
    }
    document["security"] = [{"serviceToken": []}]
    return Contract(
        name=f"{module} internal API v{version}",
        path=root / module / "internal-api.json",
        version=version,
        document=_plain(document),
        changes=openapi_changes,
        version_of=lambda snapshot: int(snapshot["info"]["version"]),
        bump=f"API_VERSION in app/modules/{module}/internal.py",
    )


def events(module: str, root: Path = SNAPSHOTS) -> list[Contract]:
    package = importlib.import_module(f"app.modules.{module}.contracts")
    declared = {
        value
        for value in vars(package).values()
        if isinstance(value, type)
        and issubclass(value, IntegrationEvent)
        and value.event_type.startswith(f"{module}.")
    }
    return [
        Contract(
            name=f"event {event.event_type} v{event.event_version}",
            path=root / module / "events" / f"{event.event_type}.v{event.event_version}.json",
            version=event.event_version,
            document=_plain(event.model_json_schema()),
            changes=_event_changes,
            version_of=_fixed(event.event_version),
            bump=f"declare {event.event_type} with event_version {event.event_version + 1}",
        )
        for event in sorted(declared, key=lambda e: (e.event_type, e.event_version))
    ]


def _fixed(version: int) -> Callable[[dict[str, Any]], int]:
    """An event's snapshot holds one version: the one in its file name."""
    return lambda _: version


def _event_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Incompatibility]:
    return schema_changes(old, new, Direction.BOTH)


def live_contracts(root: Path = SNAPSHOTS) -> list[Contract]:
    return [
        contract
        for module in ALL_MODULES
        for contract in (internal_api(module, root), *events(module, root))
    ]


def check_snapshots(contracts: list[Contract] | None = None, root: Path = SNAPSHOTS) -> list[str]:
    """What differs between the code's contracts (or those given) and the snapshots."""
    problems = []
    for contract in live_contracts(root) if contracts is None else contracts:
        if not contract.path.exists():
            problems.append(f"{contract.name}: no snapshot yet; write it with `{REFRESH}`")
        elif (verdict := contract.verdict(_read(contract.path))) is not None:
            problems.append(verdict)
    return problems + (_orphans(live_contracts(root), root) if contracts is None else [])


def write_snapshots(root: Path = SNAPSHOTS) -> list[str]:
    """Writes every snapshot that may change; returns the changes it refuses to write."""
    refused = []
    contracts = live_contracts(root)
    for contract in contracts:
        snapshot = _read(contract.path) if contract.path.exists() else None
        if snapshot is not None and contract.unbumped_breaks(snapshot):
            refused.append(str(contract.verdict(snapshot)))
            continue
        contract.path.parent.mkdir(parents=True, exist_ok=True)
        contract.path.write_text(json.dumps(contract.document, indent=2, sort_keys=True) + "\n")
    return refused + _orphans(contracts, root)


def _orphans(contracts: list[Contract], root: Path) -> list[str]:
    declared = {contract.path for contract in contracts}
    return [
        f"{path.relative_to(root)}: snapshot of a contract the code no longer declares; "
        "remove it once nothing reads that contract any more"
        for path in sorted(root.rglob("*.json"))
        if path not in declared
    ]


def _read(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _plain(document: dict[str, Any]) -> dict[str, Any]:
    """As JSON will give it back: tuples as lists, keys as strings."""
    plain: dict[str, Any] = json.loads(json.dumps(document))
    return plain
