"""Our recipes' packages in solves and locks: the built channel, rendered metadata for unbuilt recipes, and the
published channel URL that locks record instead of a path of the machine that locked.

A lock names our recipes' channel by the URL it is published at (VRE_CONDA_RECIPES_CHANNEL, a channel name or URL;
default `eo-vre`, i.e. https://conda.anaconda.org/eo-vre), so `micromamba create -f conda-lock.yml` works wherever
that channel is reachable; the images and `vre env` fetch the same files from the local channel instead.

A recipe that has not been built (otb needs a compiler toolchain and conda-forge's build dependencies) still takes
part in the solve through its rendered metadata: name, version, build string and run requirements per variant (plus
the variant's python pin and glibc floor, which the build's run exports would add). Such records have no file and no
sha256: a lock holding one is marked stale until the recipe is built and the lock remade.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rattler import Channel

from vre.lock.conda import recipes
from vre.lock.conda.spec import PLATFORMS

RECIPES_CHANNEL_ENV = "VRE_CONDA_RECIPES_CHANNEL"
DEFAULT_RECIPES_CHANNEL = "eo-vre"


def published() -> str:
    """The base URL (no trailing /) our recipes' channel is published at."""
    return Channel(os.environ.get(RECIPES_CHANNEL_ENV) or DEFAULT_RECIPES_CHANNEL).base_url.rstrip("/")


def built_names(channel: Path | None) -> set[str]:
    names: set[str] = set()
    for repodata in (channel.glob("*/repodata.json") if channel else ()):
        content = json.loads(repodata.read_text())
        names |= {r["name"] for key in ("packages", "packages.conda") for r in content.get(key, {}).values()}
    return names


def _record(data: dict[str, Any], variant: dict[str, Any], subdir: str) -> tuple[str, dict[str, Any]]:
    package, build = data["package"], data["build"]
    depends = [str(d) for d in (data.get("requirements") or {}).get("run") or []]
    if subdir != "noarch":
        if "python" in variant:
            depends = [d for d in depends if d.split()[0] != "python"] + [f"python {variant['python']}.*"]
        if variant.get("c_stdlib") == "sysroot":
            depends.append(f"__glibc >={variant['c_stdlib_version']}")
    record = {"name": package["name"], "version": str(package["version"]), "build": build["string"],
              "build_number": int(build.get("number", 0)), "depends": depends, "subdir": subdir}
    if build.get("noarch"):
        record["noarch"] = build["noarch"]
    return f"{package['name']}-{package['version']}-{build['string']}.conda", record


def rendered_channel(root: Path, dest: Path, built: Path | None) -> list[str]:
    """Index, at dest, records rendered from the recipes under root/recipes/ that `built` lacks; return their
    names (none: no channel is written)."""
    skip = built_names(built)
    todo = [r for r in recipes.find(root) if r.name not in skip]
    subdirs: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in (*PLATFORMS, "noarch")}
    for recipe in todo:
        for platform in PLATFORMS:
            for variant in recipes.render(recipe, platform):
                data = variant.recipe.to_dict()
                subdir = "noarch" if data["build"].get("noarch") else platform
                file_name, record = _record(data, variant.variant, subdir)
                subdirs[subdir][file_name] = record
    if not todo:
        return []
    for subdir, records in subdirs.items():
        (dest / subdir).mkdir(parents=True, exist_ok=True)
        (dest / subdir / "repodata.json").write_text(json.dumps(
            {"info": {"subdir": subdir}, "packages": {}, "packages.conda": records}, indent=1, sort_keys=True))
    return [r.name for r in todo]


def to_published(url: str, local: list[Path]) -> str:
    """A record's URL in a local channel, as the published channel serves it."""
    for channel in local:
        base = Channel(str(channel.resolve())).base_url.rstrip("/")
        if url.startswith(base + "/"):
            return published() + url[len(base):]
    return url
