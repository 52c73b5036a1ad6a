"""The extension folder: repo2docker's file names, each checked before anything is locked or built.

apt.txt (Debian packages), requirements.in (debian flavor) or environment.yml (conda flavor), postBuild, start and
tests/ (pytest files run inside the built image). `vre extend` writes the lock next to the spec: requirements.txt, or
conda-lock.yml with its conda-<platform>.lock files; commit them, and the next extend of the same image reuses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from vre.extend import ExtendError
from vre.release.packages import apt_list

SPECS = {"debian": "requirements.in", "conda": "environment.yml"}
LOCKS = {"debian": ("requirements.txt",),
         "conda": ("conda-lock.yml", "conda-linux-64.lock", "conda-linux-aarch64.lock")}
OTHER_FILES = ("apt.txt", "postBuild", "start", "README.md")
FOLDERS = ("tests",)
LAYER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
DEBIAN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


@dataclass(frozen=True)
class Folder:
    path: Path
    layer: str  # its layer name in the image (/opt/vre/layers/<layer>/, layers.txt)
    flavor: str

    def has(self, name: str) -> bool:
        return (self.path / name).exists()

    @property
    def spec(self) -> Path:
        return self.path / SPECS[self.flavor]

    def show(self, name: str) -> str:
        """A file of the folder as messages name it: <folder name>/<file>."""
        return f"{self.path.name}/{name}"


def load(path: Path, flavor: str, base_layers: list[str], layer: str | None = None) -> Folder:
    """Check the folder for an image of `flavor` whose layers are `base_layers`; raise ExtendError naming the file."""
    if not path.is_dir():
        raise ExtendError(f"{path}: no such folder (expected a folder with apt.txt, {' or '.join(SPECS.values())}, "
                          "postBuild, start or tests/)")
    path = path.resolve()
    layer = layer or path.name.lower()
    if not LAYER_NAME.match(layer):
        raise ExtendError(f"{path}: the layer name {layer!r} (from the folder name) is not usable: expected lower-case "
                          "letters, digits, '.', '_' or '-' (rename the folder or pass --name)")
    if layer in base_layers:
        raise ExtendError(f"{path}: the layer name {layer!r} is already a layer of the base image "
                          f"({', '.join(base_layers)}): rename the folder or pass --name")
    folder = Folder(path=path, layer=layer, flavor=flavor)
    allowed = {SPECS[flavor], *LOCKS[flavor], *OTHER_FILES}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith("."):
            continue  # .git, .gitignore, editor files: never part of the layer
        other = next((f for f, spec in SPECS.items() if spec == entry.name and f != flavor), None)
        if other:
            raise ExtendError(f"{folder.show(entry.name)}: a {other}-flavor spec, but the base image is {flavor} "
                              f"flavor (expected {SPECS[flavor]})")
        if entry.name in FOLDERS:
            if not entry.is_dir():
                raise ExtendError(f"{folder.show(entry.name)}: expected a folder of pytest files")
            continue
        if entry.name not in allowed or not entry.is_file():
            raise ExtendError(f"{folder.show(entry.name)}: unknown {'folder' if entry.is_dir() else 'file'} (expected "
                              f"one of: {', '.join(sorted(allowed))}, tests/)")
    if folder.has("apt.txt"):
        _check_apt(folder)
    if flavor == "debian" and folder.has("requirements.in"):
        requirements(folder)
    if not any(folder.has(name) for name in (SPECS[flavor], "apt.txt", "postBuild", "start")):
        raise ExtendError(f"{path}: nothing to add (expected at least one of apt.txt, {SPECS[flavor]}, postBuild, "
                          "start)")
    return folder


def _check_apt(folder: Folder) -> None:
    for package in apt_list((folder.path / "apt.txt").read_text()):
        if not DEBIAN_NAME.match(package.name):
            raise ExtendError(f"{folder.show('apt.txt')}: {package.name!r} is not a Debian package name (expected "
                              "one entry a line: name, name=version or name/release)")


def requirements(folder: Folder) -> list[tuple[int, Requirement]]:
    """(line number, requirement) of requirements.in; anything but a requirement (options such as -r, -c, --index-url,
    paths, URLs) is refused: the lock must come from the same index as the image's."""
    found = []
    for number, line in enumerate((folder.path / "requirements.in").read_text().splitlines(), 1):
        text = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not text:
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement as e:
            raise ExtendError(f"{folder.show('requirements.in')} line {number}: {text!r} is not a requirement ({e}; "
                              "expected NAME[extras] with optional version specifiers, e.g. humanize>=4)") from None
        if requirement.url:
            raise ExtendError(f"{folder.show('requirements.in')} line {number}: {text!r} installs from a URL "
                              "(expected a package of the index, with optional version specifiers)")
        found.append((number, requirement))
    return found
