"""The image matrix: images/matrix.yaml parsed, validated and expanded into build targets.

Everything is checked before anything is built: an error names the file, the field and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vre.errors import USAGE, VreError
from vre.sizes import parse_size

KNOWN_FLAVORS = ("debian", "conda")
KNOWN_VARIANTS = ("cpu", "gpu")
KNOWN_PLATFORMS = ("linux/amd64", "linux/arm64")
# What a layer must declare, per flavor: at least one of these files in its spec folder.
SPEC_FILES = {
    "debian": ("apt.txt", "requirements.in", "requirements.txt"),
    "conda": ("environment.yml",),
}


class MatrixError(VreError):
    """A matrix that cannot be built; the message names file, field and expectation."""

    exit_code = USAGE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bootstrap(_Strict):
    suite: str
    variant: str = "minbase"
    mirror: str = "http://deb.debian.org/debian"
    source_date_epoch: int
    include: tuple[str, ...] = ()


class Base(_Strict):
    bootstrap: Bootstrap | None = None
    reference: str | None = Field(default=None, pattern=r"^[^\s@]+@sha256:[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_source(self) -> Base:
        if (self.bootstrap is None) == (self.reference is None):
            raise ValueError("give exactly one of 'bootstrap' or 'reference' (an image pinned by @sha256 digest)")
        return self


class Flavor(_Strict):
    base: Base
    channels: tuple[str, ...] = ()


class Variant(_Strict):
    cuda: str | None = None
    # Extra wheel source (a find-links folder) of the variant's pip locks and builds, e.g. a CPU-only PyTorch
    # wheelhouse; a relative path is relative to the repository. `vre build --wheels DIR` overrides it.
    wheels: str | None = None


class Image(_Strict):
    parent: str | None = None
    include: tuple[str, ...] = ()
    flavors: tuple[str, ...]
    variants: tuple[str, ...] = ()
    platforms: tuple[str, ...] | None = None
    description: str = ""
    # The largest the image may be ("2.5 GB"), or per variant ({cpu: 5 GB, gpu: 10 GB}): a build over it fails.
    budget: str | dict[str, str] | None = None


class MatrixFile(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._/-]*$")
    flavors: dict[str, Flavor]
    variants: dict[str, Variant]
    platforms: tuple[str, ...]
    images: dict[str, Image]


@dataclass(frozen=True)
class Layer:
    """One installable layer: its spec folder (packages, locks) and its image folder (postBuild, start, build.sh)."""

    name: str
    spec_dir: Path
    image_dir: Path


def target_key(image: str, flavor: str, variant: str | None = None) -> str:
    """How a target is named everywhere (results, CI jobs, file names): image/flavor[/variant]."""
    return "/".join(p for p in (image, flavor, variant) if p)


@dataclass(frozen=True)
class Target:
    """One image to build: an image of the matrix in one flavor and (maybe) one variant."""

    image: str
    flavor: str
    variant: str | None
    parent: str | None  # key of the parent target, None for a root image (built on the flavor's foundation)
    layers: tuple[Layer, ...]
    platforms: tuple[str, ...]
    repository: str  # e.g. eo-vre/base-geo
    # The platform asked for (`--platform`), "" for the engine's own: the local tag then ends in its arch, since one
    # engine's local tag names one image of one platform (the registry's index joins them, see vre.publish).
    platform: str = ""

    @property
    def key(self) -> str:
        return target_key(self.image, self.flavor, self.variant)

    @property
    def tag(self) -> str:
        return f"{self.flavor}-{self.variant}" if self.variant else self.flavor

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}{arch_suffix(self.platform)}"


def arch(platform: str) -> str:
    """linux/arm64 -> arm64"""
    return platform.split("/")[-1]


def arch_suffix(platform: str) -> str:
    """What a local tag built for `platform` ends in ("" for the engine's own platform)."""
    return f"-{arch(platform)}" if platform else ""


@dataclass(frozen=True)
class Matrix:
    path: Path
    root: Path  # the repository the matrix belongs to
    spec: MatrixFile
    targets: dict[str, Target]  # parents before children
    platform: str = ""  # the platform every target is built for ("" for the engine's own), see on_platform

    def foundation_ref(self, flavor: str) -> str:
        return f"{self.spec.name}/foundation:{flavor}{arch_suffix(self.platform)}"

    def on_platform(self, platform: str | None) -> Matrix:
        """The matrix as built for `platform` (e.g. linux/arm64, under emulation on another machine): its targets'
        local tags end in the arch; None or "" is the engine's own platform."""
        if not platform:
            return self
        if platform not in self.spec.platforms:
            raise MatrixError(f"{self.path}: platforms: no {platform!r} (expected one of: "
                              f"{', '.join(self.spec.platforms)})")
        return replace(self, platform=platform,
                       targets={key: replace(t, platform=platform) for key, t in self.targets.items()})

    def select(self, images: list[str] | None = None, flavors: list[str] | None = None,
               variants: list[str] | None = None) -> list[Target]:
        """The targets asked for and every ancestor they need, parents first."""
        for field, asked, known in (("image", images, self.spec.images), ("flavor", flavors, self.spec.flavors),
                                    ("variant", variants, self.spec.variants)):
            for name in asked or ():
                if name not in known:
                    raise MatrixError(f"{self.path}: unknown {field} {name!r} (expected one of: {', '.join(known)})")
        wanted = [t for t in self.targets.values()
                  if (not images or t.image in images) and (not flavors or t.flavor in flavors)
                  and (not variants or t.variant is None or t.variant in variants)]
        needed: set[str] = set()
        for target in wanted:
            key: str | None = target.key
            while key is not None:
                needed.add(key)
                key = self.targets[key].parent
        return [t for k, t in self.targets.items() if k in needed]

    def wheels(self, target: Target) -> Path | None:
        """The extra wheel source the target's variant declares, if any."""
        variant = self.spec.variants.get(target.variant) if target.variant else None
        return self.root / variant.wheels if variant and variant.wheels else None

    def budget(self, target: Target) -> int | None:
        """The size budget of a target's image in bytes (checked when the matrix is loaded), if it has one."""
        budget = self.spec.images[target.image].budget
        if isinstance(budget, dict):
            budget = budget.get(target.variant or "")
        return parse_size(budget) if budget else None

    def image_layers(self, key: str | None) -> list[Layer]:
        """Every layer installed in a target's image, its ancestors' first (none for key None)."""
        chain: list[Layer] = []
        while key:
            chain = list(self.targets[key].layers) + chain
            key = self.targets[key].parent
        return chain


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _explain(err: ValidationError, path: Path) -> MatrixError:
    lines = []
    for e in err.errors():
        where = _location(e["loc"])
        if e["type"] == "extra_forbidden":
            parent_model = _model_at(e["loc"][:-1])
            expected = ", ".join(parent_model.model_fields) if parent_model else "a known key"
            lines.append(f"{path}: {where}: unknown key (expected one of: {expected})")
        else:
            lines.append(f"{path}: {where or '(top level)'}: {e['msg']}")
    return MatrixError("\n".join(lines))


# Where each model sits in the file ("*" is a name the user chose), to list the keys it accepts.
_MODEL_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): MatrixFile, ("flavors", "*"): Flavor, ("flavors", "*", "base"): Base,
    ("flavors", "*", "base", "bootstrap"): Bootstrap, ("variants", "*"): Variant, ("images", "*"): Image,
}


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    pattern = tuple("*" if i == 1 else str(p) for i, p in enumerate(loc))
    return _MODEL_AT.get(pattern)


def load(path: Path, root: Path | None = None) -> Matrix:
    """Parse and validate a matrix file; raise MatrixError on anything that would fail later."""
    root = root or path.resolve().parent.parent
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise MatrixError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise MatrixError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise MatrixError(f"{path}: expected a mapping with keys name, flavors, variants, platforms, images")
    try:
        spec = MatrixFile.model_validate(raw)
    except ValidationError as e:
        raise _explain(e, path) from None
    _check_names(spec, path)
    order = _topological(spec, path)
    targets = _expand(spec, order, root, path)
    return Matrix(path=path, root=root, spec=spec, targets=targets)


def _check_names(spec: MatrixFile, path: Path) -> None:
    def bad(field: str, value: str, known: Iterable[str]) -> MatrixError:
        return MatrixError(f"{path}: {field}: unknown {value!r} (expected one of: {', '.join(known)})")

    for name in spec.flavors:
        if name not in KNOWN_FLAVORS:
            raise bad(f"flavors.{name}", name, KNOWN_FLAVORS)
    for name in spec.variants:
        if name not in KNOWN_VARIANTS:
            raise bad(f"variants.{name}", name, KNOWN_VARIANTS)
    for p in spec.platforms:
        if p not in KNOWN_PLATFORMS:
            raise bad("platforms", p, KNOWN_PLATFORMS)
    for image_name, image in spec.images.items():
        where = f"images.{image_name}"
        if image.parent is not None and image.parent not in spec.images:
            raise bad(f"{where}.parent", image.parent, spec.images)
        for inc in image.include:
            if inc not in spec.images or inc == image_name:
                raise bad(f"{where}.include", inc, [n for n in spec.images if n != image_name])
        for f in image.flavors:
            if f not in spec.flavors:
                raise bad(f"{where}.flavors", f, spec.flavors)
        for v in image.variants:
            if v not in spec.variants:
                raise bad(f"{where}.variants", v, spec.variants)
        for p in image.platforms or ():
            if p not in spec.platforms:
                raise bad(f"{where}.platforms", p, spec.platforms)
        if not image.flavors:
            raise MatrixError(f"{path}: {where}.flavors: empty (expected at least one of: {', '.join(spec.flavors)})")
        budgets = image.budget if isinstance(image.budget, dict) else {"": image.budget} if image.budget else {}
        for variant, size in budgets.items():
            field = f"{where}.budget" + (f".{variant}" if variant else "")
            if variant and variant not in image.variants:
                raise bad(field, variant, image.variants)
            if parse_size(size) is None:
                raise MatrixError(f"{path}: {field}: {size!r} is not a size (expected e.g. '1.9 GB' or '650 MB')")


def _topological(spec: MatrixFile, path: Path) -> list[str]:
    """Image names, parents first; a cycle is an error naming the images in it."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = trail[trail.index(name):] + [name]
            raise MatrixError(f"{path}: images.{name}.parent: cycle {' -> '.join(cycle)} "
                              "(expected every chain of parents to end at an image without parent)")
        state[name] = "visiting"
        image = spec.images[name]
        for dep in ([image.parent] if image.parent else []) + list(image.include):
            visit(dep, trail + [name])
        state[name] = "done"
        order.append(name)

    for name in spec.images:
        visit(name, [])
    return order


def _spec_dir(root: Path, flavor: str, image: str, variant: str | None) -> Path:
    return root / "environments" / flavor / (f"{image}-{variant}" if variant else image)


def _layer(root: Path, spec: MatrixFile, path: Path, where: str, image: str, flavor: str,
           variant: str | None) -> Layer:
    layer_variant = variant if spec.images[image].variants else None
    spec_dir = _spec_dir(root, flavor, image, layer_variant)
    wanted = SPEC_FILES[flavor]
    if not any((spec_dir / f).is_file() for f in wanted):
        rel = spec_dir.relative_to(root)
        raise MatrixError(f"{path}: {where}: missing spec file: expected {' or '.join(str(rel / f) for f in wanted)}")
    return Layer(name=image, spec_dir=spec_dir, image_dir=root / "images" / image)


def _expand(spec: MatrixFile, order: list[str], root: Path, path: Path) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for name in order:
        image = spec.images[name]
        parent = spec.images[image.parent] if image.parent else None
        where = f"images.{name}"
        if parent is not None:
            for f in image.flavors:
                if f not in parent.flavors:
                    raise MatrixError(f"{path}: {where}.flavors: {f!r} but parent {image.parent!r} is built only for "
                                      f"{', '.join(parent.flavors)} (expected a subset of the parent's flavors)")
            if parent.variants and (not image.variants or not set(image.variants) <= set(parent.variants)):
                raise MatrixError(f"{path}: {where}.variants: parent {image.parent!r} has variants "
                                  f"{', '.join(parent.variants)} (expected a non-empty subset of them)")
        for inc in image.include:
            for f in image.flavors:
                if f not in spec.images[inc].flavors:
                    raise MatrixError(f"{path}: {where}.include: {inc!r} is not built for flavor {f!r} "
                                      f"(expected included images to cover the image's flavors)")
        for flavor in image.flavors:
            for variant in image.variants or (None,):
                layers = [_layer(root, spec, path, f"{where}.include", inc, flavor, variant) for inc in image.include]
                own_dir = _spec_dir(root, flavor, name, variant)
                if not image.include or own_dir.exists():
                    layers.append(_layer(root, spec, path, f"{where}.flavors.{flavor}", name, flavor, variant))
                parent_key = None
                if image.parent:
                    parent_variant = variant if parent and parent.variants else None
                    parent_key = target_key(image.parent, flavor, parent_variant)
                target = Target(image=name, flavor=flavor, variant=variant, parent=parent_key,
                                layers=tuple(layers), platforms=image.platforms or spec.platforms,
                                repository=f"{spec.name}/{name}")
                targets[target.key] = target
    return targets
