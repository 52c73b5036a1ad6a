"""`vre recipes`: render and lint the rattler-build recipes under recipes/, and build them into a local channel.

The local channel is what `vre lock --channel DIR` solves with priority over conda-forge, and what the factory
copies into a build (extra/channel/) so images install its packages from their locks.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rattler import Subdir
from rattler.index import index_fs
from rattler_build import (JinjaConfig, PlatformConfig, RenderConfig, RenderedVariant, Stage0Recipe, ToolConfiguration,
                           VariantConfig)
from rattler_build import RattlerBuildError

from vre.lock.conda import CondaError, run
from vre.lock.conda.channels import Network, reach
from vre.lock.conda.spec import PLATFORMS


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path  # recipes/<name>/recipe.yaml

    @property
    def variants(self) -> Path:
        return self.path.parent / "variants.yaml"


@dataclass(frozen=True)
class Built:
    name: str
    version: str
    build: str
    platform: str
    package: Path
    seconds: float


def find(root: Path, names: list[str] | None = None) -> list[Recipe]:
    """The recipes asked for (default: all), in name order."""
    known = {p.parent.name: Recipe(p.parent.name, p) for p in sorted((root / "recipes").glob("*/recipe.yaml"))}
    for name in names or ():
        if name not in known:
            raise CondaError(f"recipes/{name}/recipe.yaml: not found (expected one of: {', '.join(known) or 'none'})")
    return [known[n] for n in names] if names else list(known.values())


def render(recipe: Recipe, platform: str) -> list[RenderedVariant]:
    """The recipe's variants for a target platform (none when the recipe skips it)."""
    config = PlatformConfig(target_platform=platform)
    try:
        variants = (VariantConfig.from_file_with_context(recipe.variants, JinjaConfig(platform=config))
                    if recipe.variants.is_file() else VariantConfig())
        return Stage0Recipe.from_file(recipe.path).render(variants, RenderConfig(platform=config))
    except RattlerBuildError as e:
        raise CondaError(f"{recipe.path}: does not render for {platform}: {e}") from None


def lint(recipe: Recipe, variant: RenderedVariant) -> list[str]:
    """What a recipe must have to be reviewable and reproducible; one line per problem."""
    data = variant.recipe.to_dict()
    where = f"{recipe.path} ({variant.variant.get('target_platform')})"
    problems = []
    about = data.get("about", {})
    for key in ("license", "summary"):
        if not about.get(key):
            problems.append(f"{where}: about.{key}: missing")
    if not data.get("tests"):
        problems.append(f"{where}: tests: missing (expected at least one test of the built package)")
    for i, source in enumerate(data.get("source", [])):
        if "url" in source and not (source.get("sha256") or source.get("md5")):
            problems.append(f"{where}: source[{i}]: url without sha256 (expected the archive's checksum)")
        if "git" in source and not (source.get("tag") or source.get("rev")):
            problems.append(f"{where}: source[{i}]: git without tag or rev (expected a fixed revision)")
        if "path" in source:
            problems += _project_version(recipe, where, source["path"], data["package"]["version"])
    return problems


def _project_version(recipe: Recipe, where: str, path: str, version: str) -> list[str]:
    """A recipe packaging a Python project of this repository must carry that project's version."""
    pyproject = (recipe.path.parent / path / "pyproject.toml").resolve()
    if not pyproject.is_file():
        return []
    declared = tomllib.loads(pyproject.read_text()).get("project", {}).get("version")
    if declared and declared != version:
        return [f"{where}: package.version: {version}, but {pyproject} has project.version {declared} "
                "(expected the same)"]
    return []


def check(recipes: list[Recipe]) -> list[str]:
    """Render every recipe for every platform and lint each variant; return the problems found."""
    problems: list[str] = []
    for recipe in recipes:
        for platform in PLATFORMS:
            for variant in render(recipe, platform):
                problems += [p for p in lint(recipe, variant) if p not in problems]
    return problems


def build(recipes: list[Recipe], output: Path, channels: list[str], network: Network, test: bool = True,
          platform: str | None = None) -> list[Built]:
    """Build the recipes into `output` (a channel, indexed), in the order given.

    For this machine's platform by default; another target platform suits recipes without compiled code (or with
    conda-forge's cross compilers), and then tests run only where the platform is native.
    """
    platform = platform or str(Subdir.current())
    run(reach(channels, network, platform))
    output.mkdir(parents=True, exist_ok=True)
    tool = ToolConfiguration(test_strategy="native" if test else "skip")
    built = []
    for recipe in recipes:
        for variant in render(recipe, platform):
            started = time.monotonic()
            try:
                result = variant.run_build(output_dir=output, channels=[output.resolve().as_uri(), *channels],
                                           tool_config=tool)
            except RattlerBuildError as e:
                raise CondaError(f"{recipe.path}: build failed: {e}") from None
            for package in result.packages:
                # rattler-build writes 0600 files; a channel is read by others (the image's user, HTTP servers).
                package.chmod(0o644)
            built.append(Built(name=result.name, version=result.version, build=result.build_string,
                               platform=result.platform, package=result.packages[0],
                               seconds=time.monotonic() - started))
    # rattler-build refreshes repodata.json only; rattler reads a channel served over HTTP through its sharded
    # index first, so that one is rewritten too (a stale one hides the new packages).
    run(index_fs(output, force=True))
    return built
