"""The HTTP edge: origins, proxies, hosts, TLS, body size and rate limits
(app/core/http_security.py, app/core/ratelimit.py)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from app.core.config.base import SettingsBase, check_rate_limit, split_csv


class EdgeSettings(SettingsBase):
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    https_redirect: bool | None = None
    hsts_max_age_s: int = Field(default=31_536_000, ge=0)
    max_body_bytes: int = Field(default=1_048_576, ge=0)
    rate_limit_enabled: bool = True
    rate_limit_default: str = "300/minute"
    rate_limit_routes: dict[str, str] = Field(default_factory=dict)
    rate_limit_auth_ip: str = "20/minute"
    rate_limit_auth_account: str = "10/15minutes"
    rate_limit_auth_fail_closed: bool = True

    @field_validator("cors_origins", "trusted_proxies", "trusted_hosts", mode="before")
    @classmethod
    def _edge_lists(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _ip_networks(cls, value: list[str]) -> list[str]:
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"TRUSTED_PROXIES: {proxy!r} is not an IP address or network"
                ) from None
        return value

    @field_validator("rate_limit_default", "rate_limit_auth_ip", "rate_limit_auth_account")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        return check_rate_limit(value)

    @field_validator("rate_limit_routes")
    @classmethod
    def _route_rate_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for route, limit in value.items():
            method, _, path = route.partition(" ")
            if not method.isupper() or not path.startswith("/"):
                raise ValueError(
                    f"RATE_LIMIT_ROUTES: {route!r} must be 'METHOD /path', "
                    "e.g. 'POST /api/v1/orders'"
                )
            check_rate_limit(limit)
        return value

    def refuse_unsafe_edge(self) -> None:
        """Staging/prod: explicit origins, and the host names this API answers to."""
        if "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS must list explicit origins in staging/prod, not '*'")
        if not self.trusted_hosts or "*" in self.trusted_hosts:
            raise ValueError(
                "TRUSTED_HOSTS must list the host names this API answers to in staging/prod"
            )

    @property
    def behind_tls(self) -> bool:
        """Staging and prod are served over HTTPS only: HSTS on, plain HTTP redirected."""
        return self.refuses_unsafe

    @property
    def redirects_to_https(self) -> bool:
        return self.https_redirect if self.https_redirect is not None else self.behind_tls
