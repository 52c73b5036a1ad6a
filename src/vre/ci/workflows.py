"""GitHub Actions workflows rendered from the matrix (`vre ci render`): ci/github/*.yml, never edited by hand.

images.yml builds one job per target and platform on a native runner (no emulation), parents first: each job pushes
its image under a per-run, per-architecture tag of a staging package, and a child job builds on that tag. Every build
is followed by the target's compat suite; publishing (joining the per-arch images into one multi-arch tag) happens
only on the default branch and on version tags. lock-refresh.yml re-solves each flavor's locks on a schedule and
opens a pull request with the lock diff.

Everything comes from the matrix at render time, in the matrix's order, so the rendered files change exactly when
the matrix (or this module) does and `vre ci render --check` is meaningful.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from vre.lock.conda.recipechannel import RECIPES_CHANNEL_ENV
from vre.matrix import Matrix, MatrixError, Target, arch

OUTPUT = Path("ci") / "github"
DEFAULT_BRANCH = "main"
PYTHON = "3.11"  # the oldest Python pyproject.toml accepts: what the factory promises to run on
RUNNERS = {"linux/amd64": "ubuntu-24.04", "linux/arm64": "ubuntu-24.04-arm"}
GPU_RUNNER = ["self-hosted", "gpu"]
CHECK_JOB = "check"
# Pinned by commit, since a tag can be moved to other code; the header of every workflow names the releases.
ACTIONS = {
    "checkout": ("actions/checkout", "34e114876b0b11c390a56381ad16ebd13914f8d5", "v4.3.1"),
    "setup-python": ("actions/setup-python", "a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "upload-artifact": ("actions/upload-artifact", "ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
}
# Same-repository events only: a fork's pull request gets a read-only token, so it could not stage images.
NOT_FORK = "github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository"
PUBLISH = (f"github.event_name != 'pull_request' && (github.ref == 'refs/heads/{DEFAULT_BRANCH}' "
           "|| startsWith(github.ref, 'refs/tags/v'))")
# A repository with a bot token here gets lock pull requests that run the checks; GITHUB_TOKEN's own pull requests
# start no workflow (GitHub's rule against recursive runs).
LOCK_TOKEN = "${{ secrets.VRE_LOCK_REFRESH_TOKEN || github.token }}"
BOT = ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com")


def job_id(*parts: str) -> str:
    """A job id GitHub accepts (letters, digits, - and _), e.g. publish-deep-learning-conda-gpu."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts))


def build_id(target: Target, platform: str) -> str:
    return job_id("build", target.key, arch(platform))


def _uses(name: str) -> str:
    repo, commit, _ = ACTIONS[name]
    return f"{repo}@{commit}"


def _select(target: Target) -> str:
    """The `vre` arguments naming exactly this target."""
    return f"{target.image} --flavor {target.flavor}" + (f" --variant {target.variant}" if target.variant else "")


def _stage_ref(matrix: Matrix, target: Target, arch_name: str) -> str:
    """The per-run, per-arch tag a build job pushes (a shell word: the registry comes from the environment)."""
    return f"$VRE_REGISTRY/{matrix.spec.name}-ci/{target.image}:{target.tag}-$GITHUB_RUN_ID-{arch_name}"


def _setup_steps(checkout: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    # The package alone: hosted runners already have Docker, and `make setup` would apt-get it (and Chromium) and
    # pip-install as root into the system Python.
    return [
        {"name": "Check out", "uses": _uses("checkout"), "with": checkout or {"persist-credentials": False}},
        {"name": "Set up Python", "uses": _uses("setup-python"), "with": {"python-version": PYTHON}},
        {"name": "Install eo-vre", "run": "python -m pip install --disable-pip-version-check -e ."},
    ]


def _login_step() -> dict[str, Any]:
    return {"name": "Log in to ghcr.io", "env": {"TOKEN": "${{ github.token }}"},
            "run": "# Registry names are lowercase; an owner's name may not be.\n"
                   'echo "VRE_REGISTRY=ghcr.io/${GITHUB_REPOSITORY_OWNER,,}" >> "$GITHUB_ENV"\n'
                   'echo "$TOKEN" | docker login ghcr.io --username "$GITHUB_ACTOR" --password-stdin\n'}


def _disk_step() -> dict[str, Any]:
    return {"name": "Free disk space",
            "run": "# Hosted runners leave about 14 GB free; the CUDA and deep-learning images need more.\n"
                   "sudo rm -rf /usr/local/lib/android /usr/share/dotnet /opt/ghc /usr/local/.ghcup\n"
                   "df -h /\n"}


def _bootstrap_step() -> dict[str, Any]:
    return {"name": "Install mmdebstrap",
            "run": "sudo apt-get update -q\n"
                   "sudo apt-get install -y -q --no-install-recommends mmdebstrap debian-archive-keyring\n"
                   "# Ubuntu 24.04 forbids the unprivileged user namespaces of mmdebstrap's unshare mode: run it as\n"
                   "# root through a wrapper found first on PATH.\n"
                   'mkdir -p "$HOME/.local/bin"\n'
                   "printf '#!/bin/sh\\nexec sudo --preserve-env=SOURCE_DATE_EPOCH /usr/bin/mmdebstrap \"$@\"\\n' "
                   '> "$HOME/.local/bin/mmdebstrap"\n'
                   'chmod +x "$HOME/.local/bin/mmdebstrap"\n'
                   'echo "$HOME/.local/bin" >> "$GITHUB_PATH"\n'}


def _recipes_steps(matrix: Matrix, flavor: str) -> list[dict[str, Any]]:
    """Conda locks may hold packages of our own recipes (recipes/): built for this runner's platform first."""
    if not matrix.spec.flavors[flavor].channels:
        return []
    return [{"name": "Build the recipes into a local channel", "run": "vre recipes build"}]


def _root_steps(matrix: Matrix, target: Target) -> tuple[list[dict[str, Any]], str]:
    """What a job building on the flavor's base needs first, and the `vre build` options that go with it."""
    bootstrap = [_bootstrap_step()] if matrix.spec.flavors[target.flavor].base.bootstrap else []  # else pulled
    recipes = _recipes_steps(matrix, target.flavor)
    return bootstrap + recipes, " --channel .vre/channel" if recipes else ""


def _parent_job(matrix: Matrix, target: Target, platform: str) -> str:
    assert target.parent is not None  # called for children only
    parent = matrix.targets[target.parent]
    if platform not in parent.platforms:
        raise MatrixError(f"{matrix.path}: images.{target.image}.platforms: {platform} but parent "
                          f"{parent.image!r} is built only for {', '.join(parent.platforms)} (expected a subset)")
    return build_id(parent, platform)


def build_job(matrix: Matrix, target: Target, platform: str) -> dict[str, Any]:
    """Build one target for one platform, run its compat suite, push it under its per-run tag."""
    stage = _stage_ref(matrix, target, arch(platform))
    steps = [_disk_step(), *_setup_steps(), _login_step()]
    build = f"vre build {_select(target)} --no-ca-bundle"  # no TLS-intercepting proxy on hosted runners
    if target.parent:
        parent = matrix.targets[target.parent]
        needs = _parent_job(matrix, target, platform)
        build += f' --parent-image "{_stage_ref(matrix, parent, arch(platform))}"'
    else:
        needs = CHECK_JOB
        extra_steps, options = _root_steps(matrix, target)
        steps += extra_steps
        build += options
    steps += [
        {"name": f"Build {target.ref}", "run": build},
        {"name": "Run the compat suite", "run": f"vre test {_select(target)}"},
        {"name": "Push the per-run image", "run": f'docker tag {target.ref} "{stage}"\ndocker push "{stage}"\n'},
        {"name": "Keep the logs", "if": "failure()", "uses": _uses("upload-artifact"),
         "with": {"name": f"logs-{build_id(target, platform)}", "path": ".vre/logs/",
                  "if-no-files-found": "ignore", "retention-days": 7}},
    ]
    return {"name": f"build {target.key} ({platform})", "needs": [needs], "if": NOT_FORK,
            "runs-on": RUNNERS[platform], "permissions": {"contents": "read", "packages": "write"}, "steps": steps}


def publish_job(matrix: Matrix, target: Target) -> dict[str, Any]:
    """Join the target's per-arch images into multi-arch tags, named as `vre publish` names them (vre.tags): the
    immutable ones (date, commit; a release's git tag) first, the moving ones once those are in."""
    sources = " ".join(f'"{_stage_ref(matrix, target, arch(p))}"' for p in target.platforms)
    select = f"{target.image} --flavor {target.flavor}" + (f" --variant {target.variant}" if target.variant else "")
    join = (f'join() {{ docker buildx imagetools create --tag "$VRE_REGISTRY/{target.repository}:$1" {sources}; }}\n'
            f'for tag in $(vre tags {select} --revision "$GITHUB_SHA" --immutable); do join "$tag"; done\n'
            f'if [ "$GITHUB_REF_TYPE" = tag ]; then join "{target.tag}-$GITHUB_REF_NAME"; fi\n'
            f'for tag in $(vre tags {select} --revision "$GITHUB_SHA" --moving); do join "$tag"; done\n')
    return {"name": f"publish {target.key}", "needs": [build_id(target, p) for p in target.platforms],
            "if": PUBLISH, "runs-on": RUNNERS["linux/amd64"], "permissions": {"contents": "read", "packages": "write"},
            "steps": [*_setup_steps(), _login_step(), {"name": f"Publish {target.repository}", "run": join}]}


def gpu_job(matrix: Matrix, target: Target) -> dict[str, Any]:
    """The compat suite with the host's GPUs, on a self-hosted runner, for the image built in this run."""
    stage = _stage_ref(matrix, target, "$arch")
    pull = ("arch=\"$(docker version --format '{{.Server.Arch}}')\"\n"
            f'docker pull "{stage}"\ndocker tag "{stage}" {target.ref}\n')
    return {"name": f"GPU test {target.key}", "needs": [build_id(target, p) for p in target.platforms],
            # Opt-in: without a registered GPU runner the job would wait in the queue for a day.
            "if": "vars.VRE_GPU_RUNNERS == 'true'", "runs-on": GPU_RUNNER,
            "permissions": {"contents": "read", "packages": "read"},
            "steps": [*_setup_steps(), _login_step(), {"name": f"Pull {target.ref}", "run": pull},
                      {"name": "Run the compat suite with GPUs", "run": f"vre test {_select(target)} --gpu"}]}


def check_job() -> dict[str, Any]:
    return {"name": "locks and workflows match their sources", "runs-on": RUNNERS["linux/amd64"],
            "permissions": {"contents": "read"},
            "steps": [*_setup_steps(),
                      {"name": "Every lock is current (a spec changed without its lock fails)",
                       "run": "vre lock --check"},
                      {"name": "The workflows are what the matrix renders", "run": "vre ci render --check"}]}


def _is_gpu(matrix: Matrix, target: Target) -> bool:
    return bool(target.variant and matrix.spec.variants[target.variant].cuda)


def images_workflow(matrix: Matrix) -> dict[str, Any]:
    jobs = {CHECK_JOB: check_job()}
    for target in matrix.targets.values():
        jobs |= {build_id(target, p): build_job(matrix, target, p) for p in target.platforms}
        jobs[job_id("publish", target.key)] = publish_job(matrix, target)
        if _is_gpu(matrix, target):
            jobs[job_id("gpu-test", target.key)] = gpu_job(matrix, target)
    return {
        "name": "images",
        "on": {"push": {"branches": [DEFAULT_BRANCH], "tags": ["v*"]}, "pull_request": {},
               "schedule": [{"cron": "23 4 * * 1"}],  # weekly rebuild: the base's security updates
               "workflow_dispatch": {}},
        "permissions": {},
        # A newer push supersedes a pull request's run; a publishing run is never cut short.
        "concurrency": {"group": "${{ github.workflow }}-${{ github.ref }}",
                        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}"},
        "defaults": {"run": {"shell": "bash"}},  # bash -eo pipefail, for every step
        "jobs": jobs,
    }


def _flavor_dir(matrix: Matrix, flavor: str) -> str:
    """The folder holding every spec and lock of a flavor's layers."""
    dirs = [str(layer.spec_dir.relative_to(matrix.root)) for t in matrix.targets.values() if t.flavor == flavor
            for layer in t.layers]
    return os.path.commonpath(dirs)


def lock_refresh_job(matrix: Matrix, flavor: str) -> dict[str, Any]:
    branch = f"vre/lock-refresh-{flavor}"
    title = f"Refresh the {flavor} locks"
    update = ("# Only the packages asked for when started by hand with some; else everything.\n"
              "args=(--update-all)\n"
              'if [ -n "$PACKAGES" ]; then args=(); for p in $PACKAGES; do args+=(--update "$p"); done; fi\n'
              f'vre lock --flavor {flavor} "${{args[@]}}"\n')
    propose = (f'git switch --create "{branch}"\n'
               f"git add --all -- {_flavor_dir(matrix, flavor)}\n"
               f'if git diff --cached --quiet; then echo "the {flavor} locks are current"; exit 0; fi\n'
               f'git -c user.name="{BOT[0]}" -c user.email="{BOT[1]}" commit --quiet --message "{title}"\n'
               f'vre diff --locks origin/{DEFAULT_BRANCH} HEAD > "$RUNNER_TEMP/body.md"\n'
               "# GitHub refuses a pull request body over 65,536 characters.\n"
               'truncate --size="<60000" "$RUNNER_TEMP/body.md"\n'
               f'git push --force origin "{branch}"\n'
               f'number="$(gh pr list --head "{branch}" --state open --json number --jq ".[0].number")"\n'
               'if [ -n "$number" ]; then gh pr edit "$number" --body-file "$RUNNER_TEMP/body.md"\n'
               f'else gh pr create --base {DEFAULT_BRANCH} --head "{branch}" --title "{title}" '
               '--body-file "$RUNNER_TEMP/body.md"; fi\n')
    return {"name": f"refresh the {flavor} locks", "runs-on": RUNNERS["linux/amd64"],
            "permissions": {"contents": "write", "pull-requests": "write"},
            "steps": [*_setup_steps({"token": LOCK_TOKEN}), *_recipes_steps(matrix, flavor),
                      {"name": f"Update the {flavor} locks", "env": {"PACKAGES": "${{ inputs.packages }}"},
                       "run": update},
                      {"name": "Open or update the pull request", "env": {"GH_TOKEN": LOCK_TOKEN}, "run": propose}]}


def lock_refresh_workflow(matrix: Matrix) -> dict[str, Any]:
    # conda: conda-locks.yml (its recipes are built and published first; vre.ci.conda).
    flavors = dict.fromkeys(t.flavor for t in matrix.targets.values() if t.flavor != "conda")
    packages = {"description": "packages to update (space-separated; empty: every package)", "required": False,
                "default": "", "type": "string"}
    return {
        "name": "lock refresh",
        "on": {"schedule": [{"cron": "41 5 * * 1"}], "workflow_dispatch": {"inputs": {"packages": packages}}},
        "permissions": {},
        "concurrency": {"group": "${{ github.workflow }}", "cancel-in-progress": False},
        "defaults": {"run": {"shell": "bash"}},
        "jobs": {job_id("lock-refresh", flavor): lock_refresh_job(matrix, flavor) for flavor in flavors},
    }


def actionlint_config() -> dict[str, Any]:
    """actionlint's settings for these workflows: the self-hosted runners' own labels."""
    return {"self-hosted-runner": {"labels": [label for label in GPU_RUNNER if label != "self-hosted"]}}


# conda-locks.yml: where conda-forge is reachable, build our recipes, publish them, lock the conda solve groups,
# check the locks, propose them in a pull request, and install one environment from its lock with micromamba.
#
# The recipes are built on a native runner per conda platform (otb is compiled; the noarch ones once, on linux-64)
# and uploaded to the channel the locks name (repository variable VRE_CONDA_RECIPES_CHANNEL, e.g.
# https://prefix.dev/NAME or an anaconda.org user; key in secret PREFIX_API_KEY or ANACONDA_API_KEY). The lock job
# solves against that published channel, so the locks record URLs that resolve wherever they are installed.

CONDA = "conda"
BRANCH = "vre/conda-locks"
# conda platform -> a GitHub-hosted runner of that platform (recipes with compiled code build natively).
CONDA_RUNNERS = {"linux-64": RUNNERS["linux/amd64"], "linux-aarch64": RUNNERS["linux/arm64"],
                 "osx-64": "macos-15-intel", "osx-arm64": "macos-15"}
SMOKE = {"linux-64": RUNNERS["linux/amd64"], "osx-arm64": "macos-15"}
SMOKE_ENV = "deep-learning-cpu"  # what scientists reproduce on laptops: every platform, macOS included
CHANNEL = {RECIPES_CHANNEL_ENV: "${{ vars.VRE_CONDA_RECIPES_CHANNEL }}"}
KEYS = {"PREFIX_API_KEY": "${{ secrets.PREFIX_API_KEY }}", "ANACONDA_API_KEY": "${{ secrets.ANACONDA_API_KEY }}"}


def recipes_job(platform: str) -> dict[str, Any]:
    # noarch recipes are the same package everywhere: built once, on linux-64; the others build what is compiled.
    names = "" if platform == "linux-64" else " otb"
    return {"name": f"build and publish the recipes ({platform})", "runs-on": CONDA_RUNNERS[platform],
            "permissions": {"contents": "read"},
            "steps": [*_setup_steps(),
                      {"name": "Build the recipes", "run": f"vre recipes build{names} --output .vre/channel"},
                      {"name": "Publish them", "env": {**CHANNEL, **KEYS}, "run": "vre recipes publish"}]}


def lock_job(matrix: Matrix) -> dict[str, Any]:
    title = "Refresh the conda locks"
    update = ("# Only the packages asked for when started by hand with some; else everything.\n"
              "args=(--update-all)\n"
              'if [ -n "$PACKAGES" ]; then args=(); for p in $PACKAGES; do args+=(--update "$p"); done; fi\n'
              f'vre lock --flavor {CONDA} --published "${{args[@]}}"\n')
    propose = (f'git switch --create "{BRANCH}"\n'
               f"git add --all -- {_flavor_dir(matrix, CONDA)}\n"
               "# The branch is pushed even when nothing changed: the smoke jobs install from it.\n"
               'if git diff --cached --quiet; then git push --force origin "$(git rev-parse HEAD):refs/heads/'
               f'{BRANCH}"; echo "the conda locks are current"; exit 0; fi\n'
               f'git -c user.name="{BOT[0]}" -c user.email="{BOT[1]}" commit --quiet --message "{title}"\n'
               f'vre diff --locks origin/{DEFAULT_BRANCH} HEAD > "$RUNNER_TEMP/body.md"\n'
               "# GitHub refuses a pull request body over 65,536 characters.\n"
               'truncate --size="<60000" "$RUNNER_TEMP/body.md"\n'
               f'git push --force origin "{BRANCH}"\n'
               f'number="$(gh pr list --head "{BRANCH}" --state open --json number --jq ".[0].number")"\n'
               'if [ -n "$number" ]; then gh pr edit "$number" --body-file "$RUNNER_TEMP/body.md"\n'
               f'else gh pr create --base {DEFAULT_BRANCH} --head "{BRANCH}" --title "{title}" '
               '--body-file "$RUNNER_TEMP/body.md"; fi\n')
    return {"name": "lock the conda solve groups", "runs-on": RUNNERS["linux/amd64"],
            "needs": [job_id("recipes", p) for p in CONDA_RUNNERS],
            "permissions": {"contents": "write", "pull-requests": "write"},
            "steps": [*_setup_steps({"token": LOCK_TOKEN}),
                      {"name": "Lock", "env": {**CHANNEL, "PACKAGES": "${{ inputs.packages }}"}, "run": update},
                      {"name": "Check the locks", "env": CHANNEL, "run": f"vre lock --check --flavor {CONDA}"},
                      {"name": "Open or update the pull request", "env": {"GH_TOKEN": LOCK_TOKEN}, "run": propose}]}


def smoke_job(platform: str) -> dict[str, Any]:
    # micromamba's own static build, from its project's download service: no conda installation needed.
    fetch = (f'curl -fsSL "https://micro.mamba.pm/api/micromamba/{platform}/latest" '
             '| tar -xj -C "$RUNNER_TEMP" bin/micromamba\n')
    install = (f'"$RUNNER_TEMP/bin/micromamba" create --yes --prefix "$RUNNER_TEMP/env" '
               f"--file environments/{CONDA}/{SMOKE_ENV}/conda-lock.yml\n"
               '"$RUNNER_TEMP/env/bin/python" -c "import torch, rasterio, osgeo.gdal, geopandas, jupyterlab"\n')
    return {"name": f"install {SMOKE_ENV} from its lock with micromamba ({platform})", "runs-on": SMOKE[platform],
            "needs": "lock", "permissions": {"contents": "read"},
            "steps": [{**_setup_steps({"ref": BRANCH, "persist-credentials": False})[0]},
                      {"name": "Get micromamba", "run": fetch},
                      {"name": f"Install {SMOKE_ENV}", "run": install}]}


def conda_locks_workflow(matrix: Matrix) -> dict[str, Any]:
    packages = {"description": "packages to update (space-separated; empty: every package)", "required": False,
                "default": "", "type": "string"}
    jobs = {job_id("recipes", p): recipes_job(p) for p in CONDA_RUNNERS}
    jobs["lock"] = lock_job(matrix)
    jobs |= {job_id("smoke", p): smoke_job(p) for p in SMOKE}
    return {
        "name": "conda locks",
        "on": {"schedule": [{"cron": "41 5 * * 1"}], "workflow_dispatch": {"inputs": {"packages": packages}}},
        "permissions": {},
        "concurrency": {"group": "${{ github.workflow }}", "cancel-in-progress": False},
        "defaults": {"run": {"shell": "bash"}},
        "jobs": jobs,
    }


# Every file of the output folder: what makes it from the matrix, and the note its header adds.
FILES: dict[str, tuple[Callable[[Matrix], dict[str, Any] | None], str]] = {
    "images.yml": (images_workflow,
                   "Build, test and publish the image matrix. Repository variable VRE_GPU_RUNNERS=true turns on\n"
                   "# the GPU jobs (self-hosted runners labelled `gpu`, with the NVIDIA container toolkit)."),
    "lock-refresh.yml": (lock_refresh_workflow,
                         "Re-solve each flavor's locks weekly and propose them in a pull request. Needs \"Allow\n"
                         "# GitHub Actions to create pull requests\"; secret VRE_LOCK_REFRESH_TOKEN (a bot's token) "
                         "makes\n# the checks run on those pull requests."),
    "conda-locks.yml": (lambda matrix: _conda_locks(matrix),
                        "Where conda-forge is reachable: build and publish our recipes, lock the conda solve groups,\n"
                        "# check and propose them, install one from its lock. Repository variable\n"
                        "# VRE_CONDA_RECIPES_CHANNEL names the channel; secret PREFIX_API_KEY or ANACONDA_API_KEY."),
    "actionlint.yaml": (lambda matrix: actionlint_config(),
                        "actionlint's settings for images.yml and lock-refresh.yml: the GPU runners' label."),
}


def _conda_locks(matrix: Matrix) -> dict[str, Any] | None:
    return conda_locks_workflow(matrix) if any(t.flavor == "conda" for t in matrix.targets.values()) else None


def _header(note: str) -> str:
    pins = ", ".join(f"{repo} {version}" for repo, _, version in ACTIONS.values())
    return ("# Generated by `vre ci render` from images/matrix.yaml: do not edit; change the matrix (or\n"
            "# src/vre/ci/workflows.py) and render again. To use: copy the *.yml files to .github/workflows/,\n"
            "# actionlint.yaml to .github/.\n"
            f"# {note}\n# Actions pinned by commit: {pins}.\n")


class _Dumper(yaml.SafeDumper):
    """Key order kept, lists indented under their key, scripts as literal blocks; `on` comes out quoted."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # a value used by several jobs is written out in each: a workflow reads without anchors


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)


def render(matrix: Matrix) -> dict[str, str]:
    """The name and text of every file of the output folder."""
    made = {name: (make(matrix), note) for name, (make, note) in FILES.items()}
    return {name: _header(note) + yaml.dump(content, Dumper=_Dumper, sort_keys=False, width=10_000)
            for name, (content, note) in made.items() if content is not None}


def _stale(out: Path, files: dict[str, str]) -> list[Path]:
    """Files in the output folder that the matrix no longer renders (the folder is the renderer's alone)."""
    return sorted(p for p in out.glob("*") if p.is_file() and p.name not in files)


def write(matrix: Matrix, out: Path) -> list[Path]:
    files = render(matrix)
    out.mkdir(parents=True, exist_ok=True)
    for path in _stale(out, files):
        path.unlink()
    for name, text in files.items():
        (out / name).write_text(text)
    return [out / name for name in files]


def differences(matrix: Matrix, out: Path) -> list[Path]:
    """The files in `out` that differ from what the matrix renders: changed, missing or no longer rendered."""
    files = render(matrix)
    changed = [out / n for n, text in files.items() if not (out / n).is_file() or (out / n).read_text() != text]
    return changed + _stale(out, files)
