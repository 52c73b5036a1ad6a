"""The base image's Debian packages, held at their installed versions while an extension's apt.txt is installed.

apt reads a preferences file (through APT_CONFIG, for the install step only: it never lands in the image) that pins
every installed package to its version with priority 1001, so apt never upgrades, downgrades or removes one; a new
package that needs another version of a base package fails the build with apt's "unmet dependencies". An apt.txt entry
`name=version` naming a base package at another version is refused before the build.
"""

from __future__ import annotations

from pathlib import Path

from vre.extend import ExtendError
from vre.extend.baseimage import BaseImage
from vre.extend.folder import Folder
from vre.release.packages import apt_list

PREFERENCES = "apt-preferences"
CONFIG = "apt.conf"


def refuse_changes(folder: Folder, base: BaseImage) -> None:
    if not folder.has("apt.txt"):
        return
    for package in apt_list((folder.path / "apt.txt").read_text()):
        installed = base.apt.get(package.name)
        if installed and package.version and package.version != installed:
            raise ExtendError(f"{package.name}={package.version} ({folder.show('apt.txt')}) conflicts with "
                              f"{package.name} {installed} installed in {base.name}: an extension never changes a "
                              "package of its base image. Ask for the package without a version, or extend another "
                              "image.")


def write_pins(base: BaseImage, dest: Path, mounted_at: str) -> None:
    """The preferences file and the apt configuration that points to it, in dest (bind-mounted at `mounted_at`)."""
    pins = (f"Package: {name}\nPin: version {version}\nPin-Priority: 1001\n\n"
            for name, version in sorted(base.apt.items()))
    (dest / PREFERENCES).write_text("".join(pins))
    (dest / CONFIG).write_text(f'Dir::Etc::Preferences "{mounted_at}/{PREFERENCES}";\n')
