"""Fixtures for the offline deployment checks: pinned tools, rendered charts, settings.

Tools are installed into the user cache on first use (tests/deploy/deploy_tools.py); a
tool that cannot be installed fails the test that needs it, with the reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_support import ENVIRONMENTS, helm_template
from deploy_tools import REPO_ROOT, ToolInstallError, ensure


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tool() -> Callable[[str], Path]:
    """``tool("helm")`` -> path of the pinned binary, installed on first use."""
    installed: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in installed:
            try:
                installed[name] = ensure(name)
            except ToolInstallError as exc:
                pytest.fail(f"cannot install {name} for tests/deploy: {exc}", pytrace=False)
        return installed[name]

    return get


@pytest.fixture(scope="session")
def rendered(tool: Callable[[str], Path]) -> dict[str, list[dict]]:
    """Every manifest the chart renders, per environment (current Kubernetes version)."""
    helm = tool("helm")
    return {env: helm_template(helm, values) for env, values in ENVIRONMENTS.items()}


@pytest.fixture
def settings_from_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], object]:
    """Build ``tunelake.settings.Settings`` from exactly these variables, as a process would.

    The caller's own TUNELAKE_* variables and any .env file are left out.
    """
    from tunelake.settings import Settings

    def build(env: dict[str, str]) -> Settings:
        for name in list(os.environ):
            if name.startswith("TUNELAKE_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return Settings(_env_file=None)

    return build


@pytest.fixture(scope="session")
def settings_env_names() -> dict[str, str]:
    """TUNELAKE_* variable name -> Settings field name, for every field."""
    from tunelake.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper(): name for name in Settings.model_fields}
