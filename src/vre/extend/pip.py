"""The debian flavor's extension lock: requirements.in solved with uv on top of every Python package of the base image.

Fixed are the pins of each base layer's requirements.txt and constraints.txt (with their environment markers, as
`vre lock` fixes a parent's) and every other package installed in the image's environment (Debian's python3-* ones),
so the lock, requirements.txt next to requirements.in, holds only what the extension adds. A requirement that asks
for another version of a base package is refused before any solve, naming both; one that drags a base package along
is refused with the package that needs it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from vre.extend import ExtendError
from vre.extend.baseimage import BaseImage
from vre.extend.folder import Folder, requirements
from vre.lock.debian import HASH_LINE, PIN, PYTHON_VERSION, _for_image_python, diff, pins

VIA = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+).*?#\s*via\s+(?P<via>.+)$", re.M)


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    constraint: str  # the line uv gets: name==version ; marker
    where: str  # what fixes it, for messages: "base-geo's requirements.txt", ...


def base_pins(base: BaseImage) -> list[Pin]:
    """Every Python package of the base, fixed: its layers' locks first, then what else its environment holds."""
    found: list[Pin] = []
    for layer in base.layers:
        for file, why in (("constraints.txt", "constraints.txt (a Debian package)"), ("requirements.txt", "lock")):
            path = base.layer_dir(layer) / file
            if path.is_file():
                found += [Pin(canonicalize_name(m["name"]), m["version"],
                              f"{m['name']}=={m['version']}{_for_image_python(m['marker'])}", f"{layer}'s {why}")
                          for m in PIN.finditer(path.read_text())]
    locked = {p.name for p in found}
    for name, version in sorted(base.pip.items()):
        if name in locked:
            continue
        try:
            Version(version)
        except InvalidVersion:
            continue  # not PEP 440 (a Debian-patched dist-info): no constraint can name it, uv cannot pick it anyway
        found.append(Pin(name, version, f"{name}=={version}{_for_image_python(None)}",
                         f"{base.name}'s environment (installed)"))
    return found


def _fixed(base: BaseImage, pinned: list[Pin]) -> dict[str, Pin]:
    """name -> the pin that holds in the image (its Python): the installed version where both are known."""
    fixed: dict[str, Pin] = {}
    for pin in pinned:
        if pin.name not in fixed or base.pip.get(pin.name) == pin.version:
            fixed[pin.name] = pin
    return fixed


def refuse_changes(folder: Folder, base: BaseImage, pinned: list[Pin]) -> None:
    """A requirement whose specifier excludes the base's version of that package: refused, naming both."""
    fixed = _fixed(base, pinned)
    for number, requirement in requirements(folder):
        pin = fixed.get(canonicalize_name(requirement.name))
        if pin and not requirement.specifier.contains(pin.version, prereleases=True):
            raise ExtendError(
                f"{requirement} ({folder.show('requirements.in')} line {number}) conflicts with {pin.name} "
                f"{pin.version} locked in {base.name} ({pin.where}): an extension never changes a package of its "
                f"base image. Ask for a version the base has (or no version), or extend another image.")


def input_hash(folder: Folder, constraints: str, wheels: Path | None) -> str:
    parts = [f"python {PYTHON_VERSION}", folder.spec.read_text(), constraints,
             *(sorted(p.name for p in wheels.glob("*.whl")) if wheels else [])]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def lock(folder: Folder, base: BaseImage, wheels: Path | None = None) -> list[str]:
    """Make (or keep, when its inputs did not change) requirements.txt; returns what changed in it."""
    lock_path = folder.path / "requirements.txt"
    if not folder.has("requirements.in"):
        if lock_path.is_file():
            raise ExtendError(f"{folder.show('requirements.txt')}: a lock without requirements.in (expected both, "
                              "or neither)")
        return []
    pinned = base_pins(base)
    refuse_changes(folder, base, pinned)
    constraints = "\n".join(p.constraint for p in pinned) + "\n"
    digest = input_hash(folder, constraints, wheels)
    before = lock_path.read_text() if lock_path.is_file() else ""
    recorded = HASH_LINE.search(before)
    if recorded and recorded["hash"] == digest:
        return []
    with tempfile.TemporaryDirectory(prefix="vre-extend-") as tmp:
        constraints_file = Path(tmp) / "constraints.txt"
        constraints_file.write_text(constraints)
        out = Path(tmp) / "requirements.txt"
        if before:
            out.write_text(before)  # uv keeps the pins already there: a relock moves as little as it can
        cmd = _compile(folder, out, wheels) + ["-c", str(constraints_file), "--generate-hashes", "--quiet",
                                               "--custom-compile-command", "vre extend"]
        for name in sorted({p.name for p in pinned}):
            cmd += ["--no-emit-package", name]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=folder.path)
        if result.returncode != 0:
            raise ExtendError(_explain(folder, base, pinned, wheels, result.stderr.strip()))
        body = out.read_text()
    lock_path.write_text(f"# vre-input-hash: {digest}\n{body}")
    return diff(pins(before), pins(body))


def _compile(folder: Folder, out: Path, wheels: Path | None, universal: bool = True) -> list[str]:
    # Run in the folder (cwd): the lock names requirements.in by that relative path, wherever it is run from.
    cmd = ["uv", "pip", "compile", "requirements.in", "--python-version", PYTHON_VERSION, "-o", str(out)]
    cmd += ["--universal"] if universal else []
    return cmd + (["--find-links", str(wheels.resolve())] if wheels else [])


def _explain(folder: Folder, base: BaseImage, pinned: list[Pin], wheels: Path | None, uv_error: str) -> str:
    """Why requirements.in has no solution on the base: the base packages that a solve for the image's Python alone,
    preferring (not fixing) the base's versions, still moves, with what needs them; uv's own words when that does not
    tell."""
    fixed = _fixed(base, pinned)
    lines = []
    with tempfile.TemporaryDirectory(prefix="vre-extend-") as tmp:
        out = Path(tmp) / "free.txt"
        out.write_text("".join(f"{p.name}=={p.version}\n" for p in fixed.values()))  # uv's preferences
        cmd = _compile(folder, out, wheels, universal=False) + ["--quiet", "--annotation-style", "line", "--no-header"]
        free = subprocess.run(cmd, capture_output=True, text=True, cwd=folder.path)
        text = out.read_text() if free.returncode == 0 else ""
    for match in VIA.finditer(text):
        pin = fixed.get(canonicalize_name(match["name"]))
        if pin and match["version"] != pin.version:
            via = match["via"].strip().replace("-r requirements.in", folder.show("requirements.in"))
            lines.append(f"{pin.name} {match['version']} (needed by {via}) conflicts with {pin.name} {pin.version} "
                         f"locked in {base.name} ({pin.where})")
    head = (f"{folder.show('requirements.in')}: no solution on top of {base.ref} (every package of the base is fixed: "
            "an extension never changes its base image)")
    if lines:
        return head + ":\n" + "".join(f"  - {line}\n" for line in lines) + \
            "Ask for versions that work with the base's, or extend another image."
    return f"{head}:\n{uv_error}"
