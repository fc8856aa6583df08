"""GitHub Actions workflows: actionlint (with shellcheck on every `run:` script), and the
promises ci.yml and deploy.yml make to the team."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from deploy_support import run_tool
from deploy_tools import GO_TOOLS

pytestmark = pytest.mark.unit

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def load_workflow(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps_text(job: dict) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in job["steps"])


def test_actionlint(tool: Callable[[str], Path], repo_root: Path) -> None:
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert {p.name for p in workflows} >= {"ci.yml", "deploy.yml"}
    run_tool(
        [
            tool("actionlint"),
            "-no-color",
            "-shellcheck",
            tool("shellcheck"),
            "-pyflakes",
            "",  # no Python in run: steps
            *workflows,
        ],
        cwd=repo_root,
    )


def test_actionlint_catches_a_broken_workflow(tool: Callable[[str], Path], tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.nonexistent_context_key }} $UNQUOTED\n"
        "      - uses: actions/checkout@v4\n        with: {not-an-input: 1}\n"
    )
    result = run_tool(
        [tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck"), broken],
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert "nonexistent_context_key" in result.stdout


def test_ci_lints_tests_and_builds_without_pushing() -> None:
    ci = load_workflow("ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    jobs = ci["jobs"]
    lint = steps_text(jobs["lint"])
    assert "ruff check" in lint and "ruff format --check" in lint
    test = jobs["test"]
    assert "make test" in steps_text(test)
    java = next(s for s in test["steps"] if str(s.get("uses", "")).startswith("actions/setup-java"))
    assert set(str(java["with"]["java-version"]).split()) == {"17", "25"}
    assert str(java["with"]["java-version"]).split()[-1] == "17", "17 must be JAVA_HOME"
    assert "postgresql-15" in steps_text(test) and "maven" in steps_text(test)
    cached = "\n".join(str(s.get("with", {}).get("path", "")) for s in test["steps"])
    assert ".m2" in cached and ".cache/uv" in cached and ".cache/tunelake/tools" in cached
    for step in jobs["images"]["steps"]:
        if str(step.get("uses", "")).startswith("docker/build-push-action"):
            assert step["with"]["push"] is False


def test_deploy_runs_only_after_ci_passed_on_the_same_commit() -> None:
    deploy = load_workflow("deploy.yml")
    ci = load_workflow("ci.yml")
    # Only a finished run of the CI workflow on main starts it: no push or manual trigger.
    assert set(deploy["on"]) == {"workflow_run"}
    trigger = deploy["on"]["workflow_run"]
    assert trigger["workflows"] == [ci["name"]] and trigger["types"] == ["completed"]
    assert trigger["branches"] == ["main"]
    gate = " ".join(deploy["jobs"]["images"]["if"].split())
    assert "github.event.workflow_run.conclusion == 'success'" in gate
    assert "github.event.workflow_run.event == 'push'" in gate, "not a pull request's CI run"
    assert "head_repository.full_name == github.repository" in gate, "not a fork's"
    # Every later job waits for the gated one.
    assert deploy["jobs"]["staging"]["needs"] == "images"
    # What is built, tagged and deployed is the commit CI tested, not main's newest.
    assert deploy["env"]["DEPLOY_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    for name, job in deploy["jobs"].items():
        checkouts = [
            s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
        ]
        assert [c["with"]["ref"] for c in checkouts] == ["${{ env.DEPLOY_SHA }}"], name
        text = yaml.safe_dump(job)
        assert "github.sha" not in text and "GITHUB_SHA" not in text, name


def test_deploy_goes_staging_then_approved_production() -> None:
    deploy = load_workflow("deploy.yml")
    jobs = deploy["jobs"]
    assert jobs["images"]["permissions"]["packages"] == "write"
    pushes = [
        s
        for s in jobs["images"]["steps"]
        if str(s.get("uses", "")).startswith("docker/build-push-action")
    ]
    assert pushes and all(s["with"]["push"] is True for s in pushes)
    assert all(p["with"]["tags"].endswith(":${{ env.DEPLOY_SHA }}") for p in pushes)
    assert jobs["staging"]["needs"] == "images"
    assert jobs["staging"]["environment"] == "staging"
    assert jobs["production"]["needs"] == "staging"
    assert jobs["production"]["environment"] == "production"
    for env in ("staging", "production"):
        (step,) = [s for s in jobs[env]["steps"] if "deploy-release.sh" in str(s.get("run"))]
        assert step["run"] == f'scripts/deploy-release.sh {env} "$PREFIX" "$DEPLOY_SHA"'
        assert {"AIRFLOW_CHART_REPO", "AIRFLOW_CHART_VERSION", "SMOKE_API_KEY"} <= set(step["env"])
    assert deploy["concurrency"]["cancel-in-progress"] is False


@pytest.mark.parametrize("workflow", ["ci.yml", "deploy.yml"])
def test_every_action_is_pinned_to_a_commit(workflow: str) -> None:
    text = (WORKFLOWS / workflow).read_text()
    uses = re.findall(r"^\s*-?\s*uses:\s*(\S+)(.*)$", text, re.MULTILINE)
    assert uses
    for action, comment in uses:
        name, _, ref = action.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{workflow}: {action} is not pinned to a commit"
        assert re.fullmatch(r"\s*# v\d+(\.\d+)*", comment), f"{workflow}: {name} names no release"
    # One action, one commit across the workflows.
    pins: dict[str, set[str]] = {}
    for name in ("ci.yml", "deploy.yml"):
        for action in re.findall(r"uses:\s*(\S+)", (WORKFLOWS / name).read_text()):
            pins.setdefault(action.split("@")[0], set()).add(action.split("@")[1])
    assert all(len(refs) == 1 for refs in pins.values()), pins


def test_workflows_use_the_tool_versions_the_tests_use(repo_root: Path) -> None:
    deploy = load_workflow("deploy.yml")
    assert deploy["env"]["HELM_VERSION"] == GO_TOOLS["helm"].version
    ci = load_workflow("ci.yml")
    go_mod = (repo_root / "tools" / "composecheck" / "go.mod").read_text()
    required = re.search(r"^go (\d+\.\d+)", go_mod, re.MULTILINE).group(1)
    assert tuple(map(int, ci["env"]["GO_VERSION"].split("."))) >= tuple(
        map(int, required.split("."))
    )


def test_uv_is_the_makefiles_version_everywhere(repo_root: Path) -> None:
    makefile = (repo_root / "Makefile").read_text()
    uv_version = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", makefile, re.MULTILINE).group(1)
    assert load_workflow("ci.yml")["env"]["UV_VERSION"] == uv_version
    for dockerfile in sorted((repo_root / "docker").glob("*.Dockerfile")):
        tags = set(re.findall(r"astral-sh/uv:(\S+)", dockerfile.read_text()))
        assert tags == {uv_version}, f"{dockerfile.name} uses uv {tags}"


def test_image_matrices_name_real_dockerfile_stages(repo_root: Path) -> None:
    for workflow in ("ci.yml", "deploy.yml"):
        matrix = load_workflow(workflow)["jobs"]["images"]["strategy"]["matrix"]["include"]
        assert {entry["name"] for entry in matrix} == {"service", "spark", "jupyter", "airflow"}
        for entry in matrix:
            dockerfile = (repo_root / entry["file"]).read_text()
            stages = re.findall(
                r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.MULTILINE | re.IGNORECASE
            )
            assert entry["target"] in stages, f"{workflow}: {entry}"


def test_deploy_script_deploys_the_chart_and_values_that_exist(repo_root: Path) -> None:
    script = (repo_root / "scripts" / "deploy-release.sh").read_text()
    assert 'chart="$repo_root/deploy/helm/tunelake"' in script
    assert 'values="$chart/values-$environment.yaml"' in script
    assert '"$repo_root/deploy/values/airflow.yaml"' in script
    for env in ("staging", "production"):
        assert (repo_root / "deploy" / "helm" / "tunelake" / f"values-{env}.yaml").is_file()
    assert "helm rollback" in script and "--rollback-on-failure" in script
