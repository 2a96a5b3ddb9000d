"""Where the proving ground's binaries, caches and run folders live.

Binaries are built once per machine by ``deploy/local/build-tools.sh`` into a cache outside the
checkout; this module finds them from the ``paths.env`` that script writes, falling back to the
pinned versions in ``deploy/local/versions.env`` so a half-finished build still gives a precise
"missing X" error instead of a confusing one from kwokctl.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_ENV = REPO_ROOT / "deploy" / "local" / "versions.env"
STAGES_DIR = REPO_ROOT / "deploy" / "local" / "stages"
STAGE_FILES = (STAGES_DIR / "kwok-defaults.yaml", STAGES_DIR / "rollwise-sim.yaml")


class MissingBinaryError(RuntimeError):
    """A binary of the local control plane is not built yet (run ``make tools``)."""


def cache_dir() -> Path:
    """The per-machine cache: ``$ROLLWISE_CACHE`` or ``~/.cache/rollwise``."""
    override = os.environ.get("ROLLWISE_CACHE")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "rollwise"


def kwok_workdir() -> Path:
    """``KWOK_WORKDIR`` for every cluster the harness creates (never ``~/.kwok``)."""
    return cache_dir() / "kwok"


def runs_dir() -> Path:
    """Parent of the per-run state folders (pid files, configs, Prometheus TSDB)."""
    return cache_dir() / "runs"


def logs_root() -> Path:
    """Parent of the per-run log folders, in the (gitignored) ``.run/`` of the checkout."""
    override = os.environ.get("ROLLWISE_RUN_DIR")
    base = Path(override) if override else REPO_ROOT / ".run"
    if not base.is_absolute():
        base = REPO_ROOT / base
    return base / "logs"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse the ``KEY=VALUE`` lines of a shell env file (comments and blanks ignored)."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def versions() -> dict[str, str]:
    """The pinned versions from ``deploy/local/versions.env``."""
    return read_env_file(VERSIONS_ENV)


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every binary the harness runs."""

    kube_bin: Path
    kwok_bin: Path
    etcd_bin: Path
    helm_bin: Path
    prometheus: Path
    traefik_bin: Path

    @property
    def kube_apiserver(self) -> Path:
        return self.kube_bin / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.kube_bin / "kube-controller-manager"

    @property
    def kube_scheduler(self) -> Path:
        return self.kube_bin / "kube-scheduler"

    @property
    def kubectl(self) -> Path:
        return self.kube_bin / "kubectl"

    @property
    def etcd(self) -> Path:
        return self.etcd_bin / "etcd"

    @property
    def kwok(self) -> Path:
        return self.kwok_bin / "kwok"

    @property
    def kwokctl(self) -> Path:
        return self.kwok_bin / "kwokctl"

    @property
    def helm(self) -> Path:
        return self.helm_bin / "helm"

    @property
    def traefik(self) -> Path:
        return self.traefik_bin / "traefik"

    @property
    def gateway_crds(self) -> Path:
        """The Gateway API CRDs (standard channel) Traefik is built against."""
        return self.traefik_bin / "gateway-crds.yaml"

    @property
    def traefik_crds(self) -> Path:
        """Traefik's own CRDs (traefik.io/v1alpha1), from the same Traefik module version."""
        return self.traefik_bin / "traefik-crds.yaml"

    def bin_dirs(self) -> tuple[Path, ...]:
        """The cache folders holding our builds (a process running from one is ours)."""
        return (self.kube_bin, self.kwok_bin, self.etcd_bin, self.helm_bin, self.traefik_bin)

    def control_plane(self) -> dict[str, Path]:
        """Every binary a cluster needs, by the name used in error messages."""
        return {
            "kube-apiserver": self.kube_apiserver,
            "kube-controller-manager": self.kube_controller_manager,
            "kube-scheduler": self.kube_scheduler,
            "kubectl": self.kubectl,
            "etcd": self.etcd,
            "kwok": self.kwok,
            "kwokctl": self.kwokctl,
        }

    def require(self, *names: str) -> None:
        """Raise MissingBinaryError naming every requested binary that is not executable."""
        table = {
            **self.control_plane(),
            "helm": self.helm,
            "prometheus": self.prometheus,
            "traefik": self.traefik,
        }
        missing = [
            f"{name} ({table[name]})"
            for name in names or tuple(table)
            if not os.access(table[name], os.X_OK)
        ]
        if missing:
            raise MissingBinaryError(
                "not built yet: " + ", ".join(missing) + " -- run `make tools` "
                "(deploy/local/build-tools.sh)"
            )


def binaries() -> Binaries:
    """Locate the binaries: ``paths.env`` from the build, else the pinned version folders."""
    bin_root = cache_dir() / "bin"
    pins = versions()
    found = read_env_file(bin_root / "paths.env") if (bin_root / "paths.env").exists() else {}

    def folder(key: str, component: str, version_key: str) -> Path:
        if key in found:
            return Path(found[key])
        return bin_root / f"{component}-{pins[version_key]}"

    prometheus = os.environ.get("ROLLWISE_PROMETHEUS") or shutil.which("prometheus")
    return Binaries(
        kube_bin=folder("KUBE_BIN", "kubernetes", "KUBERNETES_VERSION"),
        kwok_bin=folder("KWOK_BIN", "kwok", "KWOK_VERSION"),
        etcd_bin=folder("ETCD_BIN", "etcd", "ETCD_VERSION"),
        helm_bin=folder("HELM_BIN", "helm", "HELM_VERSION"),
        prometheus=Path(prometheus or "/usr/bin/prometheus"),
        traefik_bin=folder("TRAEFIK_BIN", "traefik", "TRAEFIK_VERSION"),
    )


def tool_path_env(bins: Binaries, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose PATH starts with our kubectl, kwok and helm.

    kwokctl looks ``kubectl`` up in PATH (and downloads one if absent); the machine's
    ``/usr/bin/kubectl`` is not a real kubectl, so our build must come first.
    """
    env = dict(os.environ if base is None else base)
    # kubectl's discovery cache would otherwise be written to ~/.kube/cache.
    env["KUBECACHEDIR"] = str(cache_dir() / "kubectl-cache")
    front = [str(bins.kube_bin), str(bins.kwok_bin), str(bins.helm_bin)]
    env["PATH"] = os.pathsep.join([*front, env.get("PATH", "")])
    return env


def new_run_id() -> str:
    """A sortable, collision-safe id for one harness run (a test session or a ``cli up``)."""
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
