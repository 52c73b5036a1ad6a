"""What changed between two images (their manifests) or two revisions of the locks, as Markdown release notes.

Versions are ordered as each ecosystem orders them: PEP 440 for pip (packaging), Debian's rules for apt (epochs,
`~`; python-debian), conda's for conda (py-rattler), semver for npm. A downgrade is flagged at the top.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rattler
import semver
from debian.debian_support import Version as DebianVersion
from packaging.version import Version as PythonVersion
from rattler.exceptions import InvalidVersionError

from vre.errors import USAGE, VreError
from vre.lock.conda import CondaError
from vre.release.packages import ECOSYSTEMS, Package, layer_locks

KINDS = ("downgraded", "upgraded", "changed", "added", "removed")  # the order rows are listed in
MARKS = {"downgraded": "⚠️ **downgraded**", "upgraded": "⬆️ upgraded", "changed": "🔄 changed", "added": "➕ added",
         "removed": "➖ removed"}
LOCK_PLATFORM = "linux-64"  # the conda lock platform release notes compare (every image builds for linux/amd64)
# Each ecosystem's version type: its instances order as the ecosystem orders versions.
VERSION_TYPES: dict[str, Callable[[str], Any]] = {
    "pip": PythonVersion,
    "apt": DebianVersion,
    "conda": lambda label: rattler.Version(label.split("=", 1)[0]),  # `version=build`: the build does not order
    "npm": semver.Version.parse,
}


class DiffError(VreError):
    exit_code = USAGE


@dataclass(frozen=True)
class Change:
    ecosystem: str
    name: str
    kind: str  # one of KINDS
    old: tuple[str, ...]  # versions before (several: installed or locked at several places)
    new: tuple[str, ...]
    where: tuple[str, ...] = ()  # the layers whose locks hold the package


def compare(ecosystem: str, a: str, b: str) -> int | None:
    """-1, 0 or 1 as version a is older than, the same as, or newer than b; None if either cannot be ordered."""
    try:
        va, vb = VERSION_TYPES[ecosystem](a), VERSION_TYPES[ecosystem](b)
    except (ValueError, InvalidVersionError):  # packaging's, python-debian's and semver's errors are ValueErrors
        return None
    return int(va > vb) - int(va < vb)


def _kind(ecosystem: str, old: set[str], new: set[str]) -> str:
    """Compare the newest version on each side; versions that order the same but read differently (a conda
    rebuild, a second copy of an npm package) are `changed`."""
    try:
        newest_old = max(old, key=VERSION_TYPES[ecosystem])
        newest_new = max(new, key=VERSION_TYPES[ecosystem])
    except (ValueError, InvalidVersionError):
        return "changed"
    order = compare(ecosystem, newest_new, newest_old)
    return {1: "upgraded", -1: "downgraded"}.get(order or 0, "changed")


def changes(old: dict[str, list[Package]], new: dict[str, list[Package]]) -> list[Change]:
    """Every package added, removed, upgraded, downgraded or changed, per ecosystem, in KINDS order then by name."""
    found = []
    for eco in ECOSYSTEMS:
        before, after = _versions(old.get(eco, [])), _versions(new.get(eco, []))
        for name in sorted(before.keys() | after.keys()):
            was, now = set(before.get(name, {})), set(after.get(name, {}))
            if was == now:
                continue
            kind = "added" if not was else "removed" if not now else _kind(eco, was, now)
            # the layers holding a version that is on one side only
            layers = {layer for side in (before, after) for version, where in side.get(name, {}).items()
                      if version not in was & now for layer in where if layer}
            found.append(Change(eco, name, kind, tuple(sorted(was)), tuple(sorted(now)), tuple(sorted(layers))))
    return sorted(found, key=lambda c: (ECOSYSTEMS.index(c.ecosystem), KINDS.index(c.kind), c.name))


def _versions(packages: list[Package]) -> dict[str, dict[str, set[str]]]:
    """name -> version label -> the layers holding it."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for package in packages:
        out[package.name][package.label].add(package.layer)
    return out


def git_root(path: Path) -> Path:
    result = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if result.returncode != 0:
        raise DiffError(f"{path}: not in a git repository ({result.stderr.strip()})")
    return Path(result.stdout.strip())


def _tree_at(root: Path, revision: str, dest: Path) -> Path:
    """dest holding the repository's environments/ as of git revision `revision`."""
    result = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", revision, "--", "environments"],
                            capture_output=True)
    if result.returncode != 0:
        raise DiffError(f"{root}: cannot read environments/ at revision {revision!r} (expected a commit, branch or "
                        f"tag that has the folder): {result.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def lock_packages(root: Path, revision: str | None) -> dict[str, dict[str, list[Package]]]:
    """flavor -> ecosystem -> what environments/<flavor>/<layer>/ pins at git revision `revision` (None: the
    working tree); conda locks on linux-64."""
    with tempfile.TemporaryDirectory(prefix="vre-diff-") as tmp:
        tree = _tree_at(root, revision, Path(tmp)) if revision else root
        found: dict[str, dict[str, list[Package]]] = {}
        for flavor in sorted(p for p in (tree / "environments").glob("*") if p.is_dir()):
            merged = found.setdefault(flavor.name, {eco: [] for eco in ECOSYSTEMS})
            for layer in sorted(p for p in flavor.iterdir() if p.is_dir()):
                try:
                    packages = layer_locks(layer, layer.name, LOCK_PLATFORM)
                except (CondaError, ValueError) as e:
                    where = f"{revision}:" if revision else ""
                    raise DiffError(f"{where}{layer.relative_to(tree)}: a lock cannot be read: {e}") from None
                for eco, listed in packages.items():
                    merged[eco] += listed
        return found


def _cell(versions: tuple[str, ...]) -> str:
    return ", ".join(v or "(unpinned)" for v in versions) or "–"


def release_notes(old: str, new: str, sections: dict[str, list[Change]], preamble: Sequence[str] = ()) -> str:
    """Markdown: `preamble` lines, a summary (downgrades flagged), then a table per section (a flavor, or "" for
    an image) and ecosystem."""
    everything = [c for section in sections.values() for c in section]
    lines = [f"## Package changes: `{old}` → `{new}`", "", *preamble]
    if not everything:
        return "\n".join(lines + ["No package changed.", ""])
    totals = [f"{sum(c.kind == kind for c in everything)} {kind}" for kind in KINDS
              if any(c.kind == kind for c in everything)]
    lines += [", ".join(totals) + ".", ""]
    downgrades = [(title, c) for title, section in sections.items() for c in section if c.kind == "downgraded"]
    if downgrades:
        lines += ["> [!WARNING]", f"> **{len(downgrades)} package(s) downgraded**:"]
        lines += [f"> - `{c.name}` ({c.ecosystem}{', ' + title if title else ''}): {_cell(c.old)} → {_cell(c.new)}"
                  for title, c in downgrades]
        lines.append("")
    for title, section in sections.items():
        for eco in ECOSYSTEMS:
            rows = [c for c in section if c.ecosystem == eco]
            if not rows:
                continue
            where = any(c.where for c in rows)
            lines += [f"### {title + ': ' if title else ''}{eco} ({len(rows)})", "",
                      "| package | change | from | to |" + (" layers |" if where else ""),
                      "|---|---|---|---|" + ("---|" if where else "")]
            lines += [f"| {c.name} | {MARKS[c.kind]} | {_cell(c.old)} | {_cell(c.new)} |"
                      + (f" {', '.join(c.where)} |" if where else "") for c in rows]
            lines.append("")
    return "\n".join(lines)
