"""Building and running the production image on this machine, without a registry or a Docker
engine: buildah builds the Dockerfile, podman runs it, and the base image is a stand-in made
from Debian packages (mmdebstrap), since the official `python:3.11-slim` cannot be pulled here.

Everything specific to this machine lives here, never in the Dockerfile: the stand-in base, the
proxy's CA certificates copied into it, and the storage/runtime flags podman and buildah need
in a container without cgroup delegation. The stand-in is cached outside the repository, keyed
by its recipe, so a second run of the suite builds only the application image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "keystone-deploy"
# The machine's own CA certificates: outbound HTTPS (PyPI for `pip install uv`) goes through a
# proxy whose CA the stand-in must trust.
MACHINE_CAS = Path("/usr/local/share/ca-certificates")
# Debian bookworm's python3 is 3.11, the version of the official base image.
STANDIN_SUITE = "bookworm"
STANDIN_PACKAGES = (
    "python3",
    "python3-venv",
    "python3-pip",
    "python-is-python3",
    "ca-certificates",
    "passwd",  # useradd, as in python:3.11-slim
)
STANDIN_HOOKS = (
    # PEP 668: the official image's pip installs into the system interpreter; Debian's refuses.
    'rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED',
    # The official image's interpreter lives in /usr/local/bin.
    "for name in python python3 python3.11 pip pip3; do "
    'ln -sf /usr/bin/$name "$1"/usr/local/bin/$name; done',
    'chroot "$1" update-ca-certificates',
)
STANDIN_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    # uv reads the system store only through this; pip is patched by Debian to use it anyway.
    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
)
# `podman run` in this sandbox: no cgroup delegation (cgroupfs, runc) and hard rlimits lower
# than podman's defaults; the suite's Postgres and Redis listen on the host's loopback.
RUN_FLAGS = (
    "--runtime",
    "runc",
    "--cgroup-manager",
    "cgroupfs",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=32768:32768",
    "--network",
    "host",
)


@dataclass(frozen=True)
class Containers:
    """buildah and podman over one vfs storage kept outside the repository."""

    buildah_path: str
    podman_path: str
    storage: Path

    @classmethod
    def on_this_machine(cls) -> Containers:
        buildah = require_tool("buildah", "buildah")
        podman = require_tool("podman", "podman")
        require_tool("runc", "runc")
        require_tool("mmdebstrap", "mmdebstrap")
        return cls(buildah, podman, CACHE / "containers")

    def _storage(self) -> list[str]:
        return [
            "--root",
            str(self.storage / "root"),
            "--runroot",
            str(self.storage / "run"),
            "--storage-driver",
            "vfs",
        ]

    def podman_cmd(self, *args: str) -> list[str]:
        return [self.podman_path, *self._storage(), *args]

    def podman_run_cmd(self, *args: str) -> list[str]:
        return self.podman_cmd("run", *RUN_FLAGS, *args)

    def podman(self, *args: str, timeout: float = 120) -> str:
        return _run(self.podman_cmd(*args), timeout).stdout

    def run(self, *args: str, timeout: float = 120) -> str:
        """`podman run` with this machine's flags; its standard output."""
        return _run(self.podman_run_cmd(*args), timeout).stdout

    def has_image(self, name: str) -> bool:
        probe = subprocess.run(
            self.podman_cmd("image", "exists", name), capture_output=True, check=False
        )
        return probe.returncode == 0

    def standin_base(self) -> str:
        """The stand-in for python:3.11-slim, built once per recipe."""
        recipe = {
            "suite": STANDIN_SUITE,
            "packages": STANDIN_PACKAGES,
            "hooks": STANDIN_HOOKS,
            "env": STANDIN_ENV,
            "cas": {ca.name: ca.read_text() for ca in sorted(MACHINE_CAS.glob("*.crt"))},
        }
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        name = f"localhost/keystone-standin-python:{key}"
        if self.has_image(name):
            return name
        rootfs = CACHE / f"standin-{key}.tar"
        if not rootfs.exists():
            _mmdebstrap(rootfs)
        changes = [arg for env in STANDIN_ENV for arg in ("--change", f"ENV {env}")]
        self.podman("import", *changes, str(rootfs), name, timeout=600)
        return name

    def build(
        self,
        base: str,
        tag: str,
        target: str | None = None,
        context: Path = ROOT,
    ) -> str:
        """The Dockerfile in `context`, as a user would build it (its `target` stage, else its
        default), with the stand-in as BASE_IMAGE; returns the image's id. The storage is the
        machine's, shared by every checkout's test runs: a tag may be rebuilt by another run
        meanwhile, an id names this build's image for good."""
        id_file = Path(tempfile.mkdtemp()) / "id"
        command = [
            self.buildah_path,
            *self._storage(),
            "bud",
            "--isolation",
            "chroot",
            "--pull=never",
            "--layers=false",
            # Docker's format keeps HEALTHCHECK, which OCI image configs have no field for.
            "--format",
            "docker",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--tag",
            tag,
            *(["--target", target] if target else []),
            "--iidfile",
            str(id_file),
            str(context),
        ]
        _run(command, timeout=900)
        built = id_file.read_text().strip()
        shutil.rmtree(id_file.parent)
        return built

    def build_stage_on(self, image: str, stage: str, tag: str) -> str:
        """The Dockerfile's `stage` (`FROM runtime AS <stage>`) built on `image`, the runtime
        stage as the suite built it already: the stage's own instructions, without building
        the runtime a second time (buildah has no cache across --layers=false builds)."""
        lines = (ROOT / "Dockerfile").read_text().splitlines()
        start = lines.index(f"FROM runtime AS {stage}")
        end = next(
            (at for at in range(start + 1, len(lines)) if lines[at].startswith("FROM ")),
            len(lines),
        )
        with tempfile.TemporaryDirectory() as context:
            stage_file = [f"FROM {image}", *lines[start + 1 : end]]
            (Path(context) / "Containerfile").write_text("\n".join(stage_file) + "\n")
            return self.build(image, tag, context=Path(context))

    def debian_postgres(self, base: str) -> str:
        """A PostgreSQL server of the stand-in's Debian release (15 on bookworm): the major of
        the backup image's client, which refuses a newer server than itself. Built once per
        stand-in; run its `postgres` as the image's postgres user."""
        name = f"localhost/keystone-test-postgres:{base.rsplit(':', 1)[1]}"
        if self.has_image(name):
            return name
        with tempfile.TemporaryDirectory() as context:
            (Path(context) / "Containerfile").write_text(
                f"FROM {base}\n"
                "RUN apt-get update && apt-get install -y --no-install-recommends postgresql \\\n"
                " && rm -rf /var/lib/apt/lists/*\n"
            )
            self.build(base, name, context=Path(context))
        return name


def _mmdebstrap(rootfs: Path) -> None:
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    # Each process its own partial file: two pytest-xdist workers may build the stand-in at once
    # (one renamed the shared partial file away under the other's feet).
    partial = rootfs.with_suffix(f".{os.getpid()}.partial.tar")
    cas = [str(ca) for ca in sorted(MACHINE_CAS.glob("*.crt"))]
    hooks = [f"copy-in {' '.join(cas)} /usr/local/share/ca-certificates/"] if cas else []
    command = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(STANDIN_PACKAGES),
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        *(f"--customize-hook={hook}" for hook in hooks),
        *(f"--customize-hook={hook}" for hook in STANDIN_HOOKS),
        STANDIN_SUITE,
        str(partial),
    ]
    _run(command, timeout=900)
    partial.rename(rootfs)


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(command[:4])}... exited {done.returncode}:\n{done.stderr[-4000:]}"
        )
    return done
