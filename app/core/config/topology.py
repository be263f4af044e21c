"""Which modules this process hosts, and where the others are (docs/split-topology.md).

A module not hosted here is reached over HTTP at its peer URL: a Kubernetes Service DNS name in
production (http://catalog.shop.svc.cluster.local:8000). The worker hosts WORKER_MODULES
(default: APP_MODULES), one arq queue per module.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode

from app.core.config.base import ALL_MODULES, SettingsBase, split_csv

CALLER_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _parse_service_callers(value: Any) -> Any:
    """`name:sha256hex,name:sha256hex` -> [(name, digest)]; a name may appear twice (rotation)."""
    if not isinstance(value, str):
        return value
    callers: list[tuple[str, str]] = []
    for item in split_csv(value):
        name, sep, digest = item.partition(":")
        callers.append((name.strip(), digest.strip().lower()) if sep else ("", ""))
    return callers


class TopologySettings(SettingsBase):
    app_modules: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(ALL_MODULES))
    worker_modules: Annotated[list[str] | None, NoDecode] = None
    users_url: str | None = None
    catalog_url: str | None = None
    orders_url: str | None = None
    # This process's own credential, sent to every peer it calls (X-Service-Token); each
    # provider lists the SHA-256 of the credentials it accepts, per caller name, in
    # SERVICE_CALLERS ("orders:<sha256 hex>,catalog:<sha256 hex>"). `python -m app.cli
    # service-credential NAME` makes a pair (docs/adr/0007-service-credentials.md).
    service_token: SecretStr | None = None
    service_callers: Annotated[list[tuple[str, str]], NoDecode] = Field(default_factory=list)
    peer_connect_timeout_s: float = Field(default=1.0, gt=0, le=60)
    peer_read_timeout_s: float = Field(default=3.0, gt=0, le=300)
    peer_pool_size: int = Field(default=100, ge=1, le=10_000)
    # Only idempotent calls (reads, PUT by id) are retried, with exponential backoff and jitter.
    peer_retry_attempts: int = Field(default=3, ge=1, le=10)
    peer_retry_wait_initial_s: float = Field(default=0.05, ge=0, le=10)
    peer_retry_wait_max_s: float = Field(default=1.0, ge=0, le=60)
    peer_breaker_threshold: int = Field(default=5, ge=1, le=1_000)
    peer_breaker_reset_s: float = Field(default=10.0, gt=0, le=3_600)

    @field_validator("app_modules", "worker_modules", mode="before")
    @classmethod
    def _module_lists(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("app_modules", "worker_modules")
    @classmethod
    def _known_modules(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        name = (info.field_name or "").upper()
        unknown = sorted(set(value) - set(ALL_MODULES))
        if unknown:
            raise ValueError(f"{name} has unknown modules {unknown}; known: {list(ALL_MODULES)}")
        if not value:
            raise ValueError(f"{name} must name at least one module")
        return list(dict.fromkeys(value))

    @field_validator("users_url", "catalog_url", "orders_url")
    @classmethod
    def _peer_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname or url.query:
            raise ValueError(
                f"{(info.field_name or '').upper()} must be an http(s) base URL, e.g. "
                "http://catalog.shop.svc.cluster.local:8000"
            )
        return value.rstrip("/")

    @field_validator("service_callers", mode="before")
    @classmethod
    def _service_callers(cls, value: Any) -> Any:
        return _parse_service_callers(value)

    @field_validator("service_callers")
    @classmethod
    def _caller_digests(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for name, digest in value:
            if not CALLER_NAME.fullmatch(name) or not _SHA256_HEX.fullmatch(digest):
                raise ValueError(
                    "SERVICE_CALLERS must be a comma list of name:sha256, each name a-z, 0-9, "
                    "- or _ and each digest 64 hex digits (python -m app.cli service-credential)"
                )
        return value

    @model_validator(mode="after")
    def _peers_need_a_credential(self) -> TopologySettings:
        if self.peer_urls and self.service_token is None:
            named = ", ".join(f"{name.upper()}_URL" for name in self.peer_urls)
            raise ValueError(f"SERVICE_TOKEN must be set: this process calls peers ({named})")
        if self.service_token is not None and len(self.service_token.get_secret_value()) < 32:
            raise ValueError("SERVICE_TOKEN must be a random value of at least 32 characters")
        return self

    @property
    def worker_hosted_modules(self) -> list[str]:
        return self.worker_modules or self.app_modules

    @property
    def hosted_anywhere(self) -> set[str]:
        """The modules this deployment unit runs, in its API or its worker."""
        return {*self.app_modules, *self.worker_hosted_modules}

    @property
    def peer_urls(self) -> dict[str, str]:
        """The base URL of every module configured as served elsewhere, by module name."""
        urls = {"users": self.users_url, "catalog": self.catalog_url, "orders": self.orders_url}
        return {name: url for name, url in urls.items() if url}
