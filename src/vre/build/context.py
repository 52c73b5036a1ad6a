"""The build context of one target, staged from the repository (see images/layer.Dockerfile): the layers it adds
(and their builder-stage copies), the compat suite, an empty release folder, and bind-only extras."""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path

from vre.errors import USAGE, VreError
from vre.lock.debian import patterns, select
from vre.matrix import Matrix, Target
from vre.workspace import Workspace

# Files of an image folder that describe the build itself rather than content for the layer.
NOT_LAYER_FILES = {"Dockerfile", "README.md"}
# What only the content stage's installer reads (Python/conda specs, locks, postBuild): the builder stage's copy of a
# layer leaves them out, so one package more does not rerun a layer's build.sh (OTB bindings, code-server).
INSTALLER_ONLY_FILES = {"requirements.in", "requirements.txt", "constraints.txt", "environment.yml", "conda-lock.yml",
                        "conda-*.lock", "envs", "postBuild", "heavy.txt", "prune.txt"}
# The Debian packages of a layer, installed in a step of their own before anything else of the layer: a change to
# its Python packages or hooks then rebuilds (and users pull again) only the steps after it.
APT_FILES = ("apt-sources.list", "apt.txt", "apt.lock")
# A layer's heaviest, slowest-changing Python packages (names or globs, one or more a line): installed from the lock
# in a step of their own, before the rest of the layer. A word `envs/NAME` puts that separate environment (its
# envs/NAME/requirements.txt, e.g. TensorFlow's venv in the gpu variant) in the same step, whole.
HEAVY = "heavy.txt"
ENVS = "envs/"
# Paths under site-packages that pip installs and the image does without (C++ headers, bundled test binaries),
# removed in the step that installed them.
PRUNE = "prune.txt"


def copy_tree(src: Path, dst: Path, skip: Collection[str] = frozenset()) -> None:
    """Merge src into dst, without caches and build leftovers; nothing when src is no folder."""
    if not src.is_dir():
        return
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", "build", *skip)
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=ignore)


def _stage_steps(layer: Path, context: Path, name: str, spec: Path) -> None:
    """The layer's apt files (apt/NAME/), the pins of its heavy packages (heavy/NAME/requirements.txt) and the locks
    of its heavy separate environments (heavy/NAME/envs/ENV/requirements.txt); `layer` is its staged folder, `spec` its
    environment folder in the repository (for errors)."""
    for folder in ("apt", "heavy"):
        (context / folder / name).mkdir(parents=True, exist_ok=True)
    for file in APT_FILES:
        if (layer / file).is_file():
            shutil.copy2(layer / file, context / "apt" / name / file)
    words = patterns(layer / HEAVY)
    envs = [word.rstrip("/") for word in words if word.startswith(ENVS)]
    packages = [word for word in words if not word.startswith(ENVS)]
    heavy = context / "heavy" / name
    if packages and (layer / "requirements.txt").is_file():
        (heavy / "requirements.txt").write_text(select((layer / "requirements.txt").read_text(), packages))
    for env in envs:
        if not (layer / env / "requirements.txt").is_file():
            raise VreError(f"{spec / HEAVY}: '{env}' names a separate environment, but the layer has no "
                           f"{env}/requirements.txt (expected its lock: run `vre lock`)", USAGE)
        (heavy / env).mkdir(parents=True)
        shutil.copy2(layer / env / "requirements.txt", heavy / env / "requirements.txt")
    if words and (layer / PRUNE).is_file():
        shutil.copy2(layer / PRUNE, heavy / PRUNE)


def stage_context(matrix: Matrix, target: Target, workspace: Workspace, wheels: Path | None = None,
                  channel: Path | None = None) -> Path:
    """Stage the context afresh; `wheels` and `channel` (extra sources, bind-mounted by the build, never copied into
    a layer) default to the matrix's wheel folder of the target's variant and nothing."""
    context = workspace.context(target.key)
    shutil.rmtree(context, ignore_errors=True)
    for layer in target.layers:
        dest = context / "layers" / layer.name
        copy_tree(layer.spec_dir, dest)
        copy_tree(layer.image_dir, dest, skip=NOT_LAYER_FILES)
        dest.mkdir(parents=True, exist_ok=True)
        copy_tree(dest, context / "builder" / layer.name, skip=INSTALLER_ONLY_FILES)
        (context / "builder" / layer.name).mkdir(parents=True, exist_ok=True)
        _stage_steps(dest, context, layer.name, layer.spec_dir)
    copy_tree(matrix.root / "compat-tests", context / "compat")
    (context / "release").mkdir(parents=True)  # the release files, once the image stage is built (see vre.build.run)
    for name, source in (("wheels", wheels or matrix.wheels(target)), ("channel", channel)):
        (context / "extra" / name).mkdir(parents=True, exist_ok=True)
        if source:
            copy_tree(source, context / "extra" / name)
    return context
