"""`make run-split` (`python -m devtools run --split`): the split topology on one machine.

One API process and one worker per module, each hosting that module alone and reaching the
others at 127.0.0.1 ports with its own service credential, events over Redis Streams, and
nginx (deploy/gateway) on PORT in front: the same URL, demo accounts and curl walk as
`make run`. The runner's Ctrl-C stops every process it started.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import httpx

from app.core.config import ALL_MODULES
from app.core.security.services import credential_digest, new_service_token
from devtools.gateway import render_gateway
from devtools.servers import free_port
from devtools.supervisor import DevStack

# Which services each one accepts internal calls from (docs/split-topology.md).
CALLERS = {"users": ("catalog", "orders"), "catalog": ("orders",), "orders": ("users",)}
SERVICE_START_TIMEOUT_S = 120


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/sbin/nginx") if Path(path).exists()), None
    )


# Only the service hosting users signs access tokens; the others verify with its JWKS and the
# settings refuse them a signing key.
_SIGNING_ONLY_IN_USERS = ("JWT_PRIVATE_KEY",)


def _own_secrets(env: dict[str, str], module: str) -> dict[str, str]:
    """`env` without what belongs to other services: the other modules' database logins, the
    operator's DATABASE_URL where the module has a login of its own, and, outside users, the
    signing key."""
    own_url = f"{module.upper()}_DATABASE_URL"
    withheld = {f"{m.upper()}_DATABASE_URL" for m in ALL_MODULES} - {own_url}
    if env.get(own_url):
        withheld.add("DATABASE_URL")
    if module != "users":
        withheld.update(_SIGNING_ONLY_IN_USERS)
    return {name: value for name, value in env.items() if name not in withheld}


def service_environments(env: dict[str, str], ports: dict[str, int]) -> dict[str, dict[str, str]]:
    tokens = {module: new_service_token() for module in ALL_MODULES}
    common = {
        **{f"{m.upper()}_URL": f"http://127.0.0.1:{port}" for m, port in ports.items()},
        "EVENT_TRANSPORT": "redis-streams",
        "TRUSTED_PROXIES": "127.0.0.1",  # the gateway
    }
    return {
        module: {
            **_own_secrets(env, module),
            **common,
            "APP_MODULES": module,
            "WORKER_MODULES": module,
            "SERVICE_TOKEN": tokens[module],
            "SERVICE_CALLERS": ",".join(
                f"{caller}:{credential_digest(tokens[caller])}" for caller in CALLERS[module]
            ),
        }
        for module in ALL_MODULES
    }


def start_split(stack: DevStack, env: dict[str, str], port: str, data_dir: Path) -> None:
    """The three services and their workers, then the gateway once they are ready."""
    nginx = nginx_path()
    if nginx is None:
        raise RuntimeError("make run-split needs nginx for its gateway: apt-get install nginx")
    ports = {module: free_port() for module in ALL_MODULES}
    python = sys.executable
    for module, module_env in service_environments(env, ports).items():
        serve = [python, "-m", "app.cli", "serve", "--port", str(ports[module])]
        stack.spawn(serve, module_env)
        stack.spawn([python, "-m", "app.cli", "worker"], module_env)
    for module, module_port in ports.items():
        _wait_ready(stack, module, f"http://127.0.0.1:{module_port}")
    upstreams = {module: f"127.0.0.1:{module_port}" for module, module_port in ports.items()}
    config = render_gateway(data_dir / "gateway", int(port), upstreams)
    gateway = [nginx, "-p", str(config.parent), "-e", "stderr", "-c", str(config)]
    stack.spawn([*gateway, "-g", "daemon off;"], env)
    print("services: " + ", ".join(f"{m} 127.0.0.1:{p}" for m, p in ports.items()), flush=True)


def _wait_ready(stack: DevStack, module: str, base: str) -> None:
    deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in stack.processes):
            raise RuntimeError(f"a process exited while the {module} service was starting")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the {module} service was not ready within {SERVICE_START_TIMEOUT_S} s")
