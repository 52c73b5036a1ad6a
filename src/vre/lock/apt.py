"""Locked Debian packages: every apt package of an image, with its exact version and sha256, per architecture.

`apt.txt` says what a layer wants; `apt.lock` beside it is what the build installs. The resolver is apt itself, run
on the host against a private state directory (no container, no root filesystem): the packages of the layers below
are written into a dpkg status file as installed, so apt adds only what the layer needs and a layer never changes
its parent's packages. The foundation's lock holds the bootstrap's package set too (Priority: required, Essential and
apt, as mmdebstrap's minbase), so every Debian package of every image is in exactly one lock. Hashes come from the
archive's Packages index (python-debian parses `apt-cache show`).

Lock format: a first line `# vre-input-hash: <sha256>` over every input, then one line per package and platform:
`<debian-arch> <name> <version> <sha256>`.

A `!name` line in apt.txt omits a package that a dependency declares but the image does not need at run time (Debian's
python3-scipy depends on the pythran compiler, which pulls gcc, g++ and the Boost headers): apt resolves as if an
empty stand-in providing it were installed, the lock records it as `# omitted <arch> <name> <version>`, and the
installer puts that stand-in (`vre-omitted-<name>`, Provides: `<name> (= <version>)`) in its place. A child layer that
names the package in its own apt.txt installs the real one.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from debian.deb822 import Deb822

from vre.lock.debian import HASH_LINE, LockError, LockReport, home
from vre.matrix import Layer, Matrix, Target
from vre.workspace import Workspace

LOCK = "apt.lock"
SPEC = "apt.txt"
SOURCES = "apt-sources.list"
DEB_ARCH = {"linux/amd64": "amd64", "linux/arm64": "arm64"}
# Every lock covers every platform the factory knows, whatever one matrix builds: one lock serves them all.
ARCHS = tuple(sorted(DEB_ARCH.values()))
ALWAYS = ("apt",)  # mmdebstrap's minbase: Essential and Priority: required packages, plus apt
LINE = re.compile(r"^(?P<arch>[a-z0-9]+) (?P<name>[a-z0-9][a-z0-9+.-]*) (?P<version>\S+) (?P<sha256>[0-9a-f]{64})$")
# An apt.txt entry: a package name, maybe with an architecture qualifier (`otb-bin [amd64]`, `foo [!arm64]`).
QUALIFIED = re.compile(r"(?P<name>[^\s\[\]]+)(?:\s*\[(?P<archs>[^\]]*)\])?")
LEFT_OUT = re.compile(r"^# left out on (?P<arch>[a-z0-9]+): (?P<names>[^(]*?) \(", re.M)
UNAVAILABLE = re.compile(r"^# unavailable (?P<arch>[a-z0-9]+): (?P<why>.*)$", re.M)
OMITTED = re.compile(r"^# omitted (?P<arch>[a-z0-9]+) (?P<name>[a-z0-9][a-z0-9+.-]*) (?P<version>\S+)$", re.M)
STAND_IN = "vre-omitted-"  # the stand-in package's name prefix (images/foundation/vre-install makes them)
# `apt-get --print-uris` names each deb file NAME_VERSION_ARCH.deb, with the epoch's colon escaped.
DEB_FILE = re.compile(r"^'[^']+' (?P<name>[^_]+)_(?P<version>[^_]+)_(?P<arch>[a-z0-9]+)\.deb ")


@dataclass(frozen=True, order=True)
class Pin:
    arch: str  # the platform it was resolved for (an arch: all package appears once per platform)
    name: str
    version: str
    sha256: str

    def line(self) -> str:
        return f"{self.arch} {self.name} {self.version} {self.sha256}"


@dataclass(frozen=True)
class AptUnit:
    """One apt lock: the foundation's, or a layer's on top of its ancestors'."""

    name: str
    spec: Path  # apt.txt
    sources: tuple[str, ...]  # sources.list lines, the units below included
    below: tuple[AptUnit, ...] = ()
    bootstrap: tuple[str, ...] | None = None  # the foundation: the bootstrap's `include`, locked with its base set
    shown: str = ""  # the spec's path as messages show it (relative to the repository)

    @property
    def lock_path(self) -> Path:
        return self.spec.with_name(LOCK)


def read(path: Path) -> tuple[str | None, list[Pin]]:
    """(recorded input hash, pins) of a lock file; LockError naming the line on anything else."""
    return parse(path.read_text(), str(path))


def parse(text: str, where: str) -> tuple[str | None, list[Pin]]:
    """(recorded input hash, pins) of a lock's text; `where` names it in errors."""
    recorded = HASH_LINE.search(text)
    pins = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = LINE.match(line)
        if not match:
            raise LockError(f"{where}:{number}: expected '<arch> <name> <version> <sha256>', got {line!r}")
        pins.append(Pin(**match.groupdict()))
    return (recorded["hash"] if recorded else None), pins


def entries(spec: Path) -> list[tuple[str, frozenset[str], bool]]:
    """(package, archs, negated) of every entry of an apt.txt: `name` (every arch), `name [amd64]` (only there) or
    `name [!arm64]` (everywhere but there), Debian's Build-Depends notation; a bad qualifier is a LockError naming the
    line."""
    found = []
    for number, line in enumerate(spec.read_text().splitlines(), 1):
        text = line.split("#", 1)[0]
        for match in QUALIFIED.finditer(text):
            words = (match["archs"] or "").split()
            negated = {w.startswith("!") for w in words}
            archs = frozenset(w.lstrip("!") for w in words)
            if match["archs"] is not None and (not words or len(negated) != 1 or not archs <= set(ARCHS)):
                raise LockError(f"{spec}:{number}: {match[0].strip()!r}: expected `name [arch ...]` or "
                                f"`name [!arch ...]` with archs among {', '.join(ARCHS)}")
            found.append((match["name"], archs, negated == {True}))
        if QUALIFIED.sub("", text).strip():
            raise LockError(f"{spec}:{number}: {text.strip()!r}: expected package names, each maybe followed by "
                            "[arch ...] or [!arch ...]")
    return found


def _for_arch(spec: Path, arch: str | None) -> list[str]:
    return [name for name, archs, negated in entries(spec) if arch is None or not archs or (arch in archs) != negated]


def wanted(spec: Path, arch: str | None = None) -> list[str]:
    """The package names of an apt.txt (comments and blank lines ignored; `name/suite` kept for apt): those it wants
    on `arch` (a Debian arch), or every one named when arch is None."""
    return [name for name in _for_arch(spec, arch) if not name.startswith("!")]


def omitted_names(spec: Path, arch: str | None = None) -> list[str]:
    """The packages an apt.txt omits (`!name`) on `arch`: dependencies the image does without."""
    return [name[1:] for name in _for_arch(spec, arch) if name.startswith("!")]


def omitted(path: Path) -> list[Pin]:
    """The stand-ins a lock records (`# omitted <arch> <name> <version>`), as pins without a sha256."""
    text = path.read_text() if path.is_file() else ""
    return [Pin(sha256="", **m.groupdict()) for m in OMITTED.finditer(text)]


def qualified(spec: Path) -> list[str]:
    """The entries of an apt.txt as written (with their qualifiers), for the lock's input hash."""
    return [name + (f" [{'!' if negated else ''}{' '.join(sorted(archs))}]" if archs else "")
            for name, archs, negated in entries(spec)]


def left_out(spec: Path, arch: str) -> list[str]:
    """The packages of an apt.txt that `arch` goes without (by its qualifiers)."""
    every = wanted(spec)
    here = set(wanted(spec, arch))
    return [name for name in every if name not in here]


def _source_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def foundation_unit(matrix: Matrix) -> AptUnit:
    """The foundation's lock (images/foundation/apt.txt), shared by every flavor: their bootstraps must agree."""
    boots = {name: f.base.bootstrap for name, f in matrix.spec.flavors.items()}
    distinct = {b for b in boots.values()}
    if None in distinct or len(distinct) != 1:
        raise LockError(f"{matrix.path}: flavors.*.base: the Debian lock needs one `bootstrap` shared by every flavor "
                        "(found: " + ", ".join(f"{n}: {b or 'reference'}" for n, b in boots.items()) + ")")
    boot = next(iter(distinct))
    assert boot is not None
    folder = matrix.root / "images" / "foundation"
    sources = [f"deb {boot.mirror} {boot.suite} main", *_source_lines(folder / SOURCES)]
    return AptUnit(name="foundation", spec=folder / SPEC, sources=tuple(sources), bootstrap=boot.include,
                   shown=f"images/foundation/{SPEC}")


def units(matrix: Matrix, target: Target) -> list[AptUnit]:
    """The apt locks of a target's own layers (debian flavor). Each is solved on its home image's chain, with every
    unit below it there fixed: an image that includes another's layer (vre: desktop, ide) installs that lock as is."""
    if target.flavor != "debian":
        return []
    found = []
    for layer in target.layers:
        home_target = home(matrix, target, layer)
        chain = [foundation_unit(matrix)]
        for below in matrix.image_layers(home_target.parent) + list(home_target.layers):
            unit = _layer_unit(matrix, below, chain)
            if below == layer:
                found += [unit] if unit else []
                break
            chain += [unit] if unit else []
    return found


def _layer_unit(matrix: Matrix, layer: Layer, chain: list[AptUnit]) -> AptUnit | None:
    spec = layer.spec_dir / SPEC
    if not spec.is_file() or not wanted(spec):
        return None
    sources = chain[-1].sources + tuple(_source_lines(layer.spec_dir / SOURCES))
    return AptUnit(name=layer.name, spec=spec, sources=sources, below=tuple(chain),
                   shown=str(spec.relative_to(matrix.root)))


def input_hash(unit: AptUnit, archs: tuple[str, ...]) -> str:
    parts = [" ".join(sorted(archs)), "\n".join(unit.sources), " ".join(qualified(unit.spec)), str(unit.bootstrap)]
    parts += [below.lock_path.read_text() if below.lock_path.is_file() else f"{below.name}: no lock"
              for below in unit.below]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def status(unit: AptUnit, arch_list: tuple[str, ...]) -> str:
    if not unit.lock_path.is_file():
        return "missing"
    recorded, _ = read(unit.lock_path)
    return "fresh" if recorded == input_hash(unit, arch_list) else "stale"


@dataclass
class AptRoot:
    """apt-get and apt-cache over a private configuration and state for one architecture and set of sources."""

    workdir: Path
    arch: str
    sources: tuple[str, ...]
    installed: list[Pin] = field(default_factory=list)

    def _options(self) -> list[str]:
        w = self.workdir
        return ["-o", f"Dir::Etc::SourceList={w / 'sources.list'}", "-o", f"Dir::Etc::SourceParts={w / 'empty'}",
                "-o", f"Dir::Etc::Preferences={w / 'preferences'}", "-o", f"Dir::Etc::PreferencesParts={w / 'empty'}",
                "-o", f"Dir::State={w / 'state'}", "-o", f"Dir::State::status={w / 'status'}",
                "-o", f"Dir::Cache={w / 'cache'}", "-o", f"APT::Architecture={self.arch}",
                "-o", f"APT::Architectures::={self.arch}", "-o", "Debug::NoLocking=1",
                "-o", "Acquire::Languages=none", "-o", "APT::Install-Recommends=false", "-q"]

    def _run(self, tool: str, *args: str) -> str:
        if not shutil.which(tool):
            raise LockError(f"{tool} not found: the Debian lock is resolved with the host's apt (a Debian machine)")
        result = subprocess.run([tool, *self._options(), *args], capture_output=True, text=True)
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if line.startswith("E:")]
            raise LockError(f"{tool} {args[0]}: " + ("; ".join(errors) or result.stderr.strip()))
        return result.stdout

    def update(self) -> None:
        for sub in ("state/lists/partial", "cache/archives/partial", "empty"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        (self.workdir / "sources.list").write_text("\n".join(self.sources) + "\n")
        (self.workdir / "status").write_text("")
        self._run("apt-get", "update")

    def show(self, specs: list[str]) -> list[Deb822]:
        """The index stanzas of NAME=VERSION specs (one per package, the first source that has it)."""
        if not specs:
            return []
        seen: dict[tuple[str, str], Deb822] = {}
        for stanza in Deb822.iter_paragraphs(self._run("apt-cache", "show", *specs)):
            seen.setdefault((stanza["Package"], stanza["Version"]), stanza)
        return list(seen.values())

    def mark_installed(self, pins: list[Pin], stand_ins: Sequence[Pin] = ()) -> None:
        """Write the packages below into the private dpkg status: apt then treats them as installed, fixed; and the
        omitted packages' stand-ins, which satisfy what depends on them."""
        stanzas = self.show([f"{p.name}={p.version}" for p in pins])
        stanzas += [Deb822({"Package": STAND_IN + p.name, "Version": p.version, "Architecture": "all",
                            "Provides": f"{p.name} (= {p.version})", "Maintainer": "eo-vre", "Description": "omitted"})
                    for p in stand_ins]
        with (self.workdir / "status").open("w") as out:
            for stanza in stanzas:
                stanza["Status"] = "install ok installed"
                out.write(stanza.dump() + "\n")
        self.installed = pins

    def candidate(self, name: str) -> str:
        """The version apt would install of `name`; LockError when the sources have none."""
        try:
            shown = self._run("apt-cache", "show", "--no-all-versions", name)
            return str(next(Deb822.iter_paragraphs(shown))["Version"])
        except (LockError, StopIteration):
            raise LockError(f"!{name}: the apt sources have no package {name} to omit") from None

    def base_set(self) -> list[str]:
        """What mmdebstrap's minbase installs: Essential and Priority: required packages, and apt."""
        names = set(ALWAYS)
        for stanza in Deb822.iter_paragraphs(self._run("apt-cache", "dumpavail")):
            if stanza.get("Essential") == "yes" or stanza.get("Priority") == "required":
                names.add(stanza["Package"])
        return sorted(names)

    def resolve(self, names: list[str]) -> list[Pin]:
        """The packages apt would download to install `names` (NAME, NAME/SUITE or NAME=VERSION) on top of what is
        marked installed."""
        out = self._run("apt-get", "install", "--print-uris", "-y", "-qq", "--allow-downgrades", *names)
        files = [m for m in map(DEB_FILE.match, out.splitlines()) if m]
        specs = [f"{m['name']}={m['version'].replace('%3a', ':')}" for m in files]
        below = {p.name: p.version for p in self.installed}
        changed = [s for s in specs if s.split("=", 1)[0] in below]
        if changed:
            raise LockError("would change packages of the layers below: " + ", ".join(
                f"{s.split('=')[0]} {below[s.split('=')[0]]} -> {s.split('=', 1)[1]}" for s in changed))
        return [Pin(arch=self.arch, name=s["Package"], version=s["Version"], sha256=s["SHA256"])
                for s in self.show(specs)]


def solve(unit: AptUnit, arch: str, workdir: Path, keep: dict[str, str]) -> tuple[list[Pin], list[Pin]]:
    """Resolve one unit for one architecture, its units below fixed as installed: (its packages, the stand-ins of the
    packages it omits). `keep` (name: version, from the previous lock) is preferred: a package keeps its version
    unless it must move, so a relock moves only what it must and `--update NAME` only NAME (and what NAME drags
    along)."""
    root = AptRoot(workdir=workdir / arch, arch=arch, sources=unit.sources)
    root.update()
    below = [p for u in unit.below for p in read(u.lock_path)[1] if p.arch == arch] if unit.below else []
    missing = [u.name for u in unit.below if not u.lock_path.is_file()]
    if missing:
        raise LockError(f"{unit.shown}: lock {', '.join(missing)} first (the layers below)")
    stand_ins = [p for u in unit.below for p in omitted(u.lock_path) if p.arch == arch]
    names = wanted(unit.spec, arch) + ([*root.base_set(), *unit.bootstrap] if unit.bootstrap is not None else [])
    try:
        own = [Pin(arch=arch, name=name, version=keep.get(STAND_IN + name) or root.candidate(name), sha256="")
               for name in omitted_names(unit.spec, arch)]
        root.mark_installed(below, stand_ins + own)
        newest = root.resolve(names)
        kept = [f"{p.name}={keep[p.name]}" for p in newest if keep.get(p.name, p.version) != p.version]
        return (root.resolve(names + kept) if kept else newest), own
    except LockError as e:
        raise LockError(f"{unit.shown} ({arch}): {e}\nRelax apt.txt, update the layer below first, or release a "
                        "package whose locked version the mirror no longer has with `vre lock --update NAME`."
                        ) from None


def left_out_of(path: Path) -> dict[str, list[str]]:
    """arch -> the packages a lock's apt.txt does not want there (recorded as `# left out on <arch>: <names> ...`)."""
    return {m["arch"]: m["names"].split() for m in LEFT_OUT.finditer(path.read_text())} if path.is_file() else {}


def unavailable(path: Path) -> dict[str, str]:
    """arch -> why a lock has no packages for it (recorded by `vre lock` as `# unavailable <arch>: <reason>`)."""
    return {m["arch"]: m["why"] for m in UNAVAILABLE.finditer(path.read_text())} if path.is_file() else {}


def lock_unit(unit: AptUnit, arch_list: tuple[str, ...], workdir: Path, *, check: bool, update: list[str],
              update_all: bool = False) -> LockReport:
    """Check, or (re)solve, one apt lock: when stale or missing, or when asked to update.

    An architecture that cannot be resolved (a package Debian does not build for it) is recorded in the lock with
    the reason, so that a build for it fails with that reason; a unit below that is unavailable makes this one so.
    """
    state = status(unit, arch_list)
    previous = read(unit.lock_path)[1] if unit.lock_path.is_file() else []
    touched = any(p.name in update for p in previous) or any(w.split("/")[0] in update for w in wanted(unit.spec))
    report = LockReport(target=unit.name, layer=f"{unit.name} (apt)", status=state)
    if check or (state == "fresh" and not touched and not update_all):
        return report
    previous_omitted = omitted(unit.lock_path)
    kept = [] if update_all else [p for p in previous if p.name not in update]
    kept += [] if update_all else [Pin(p.arch, STAND_IN + p.name, p.version, "") for p in previous_omitted
                                   if p.name not in update]
    pins: list[Pin] = []
    stand_ins: list[Pin] = []
    missing: dict[str, str] = {}
    for arch in arch_list:
        below = next((f"{u.name} is unavailable for {arch}" for u in unit.below if arch in unavailable(u.lock_path)),
                     None)
        try:
            if below:
                raise LockError(below)
            found, own = solve(unit, arch, workdir, {p.name: p.version for p in kept if p.arch == arch})
            pins += found
            stand_ins += own
        except LockError as e:
            missing[arch] = " ".join(str(e).split())
    if len(missing) == len(arch_list):
        raise LockError("\n".join(f"{arch}: {why}" for arch, why in missing.items()))
    header = (f"# vre-input-hash: {input_hash(unit, arch_list)}\n"
              f"# Debian packages of {unit.name} ({', '.join(arch_list)}), made by `vre lock` from {SPEC}: "
              "<arch> <name> <version> <sha256>\n")
    header += "".join(f"# unavailable {arch}: {why}\n" for arch, why in missing.items())
    header += "".join(f"# omitted {p.arch} {p.name} {p.version}\n" for p in sorted(stand_ins))
    header += "".join(f"# left out on {arch}: {' '.join(names)} ({SPEC}'s arch qualifiers)\n"
                      for arch in arch_list if (names := left_out(unit.spec, arch)))
    unit.lock_path.write_text(header + "".join(p.line() + "\n" for p in sorted(pins)))
    report.status = "locked"
    report.changes = [f"! {arch} unavailable: {why[:160]}" for arch, why in missing.items()] + changes(previous, pins)
    report.changes += [f"{line[0]} omitted{line[1:]}" for line in changes(previous_omitted, stand_ins)]
    return report


def changes(before: list[Pin], after: list[Pin]) -> list[str]:
    """What a relock changed, one line per package and architecture (+ added, - removed, ~ moved)."""
    old = {(p.name, p.arch): p.version for p in before}
    new = {(p.name, p.arch): p.version for p in after}
    return ([f"+ {n} {v} ({a})" for (n, a), v in sorted(new.items()) if (n, a) not in old]
            + [f"- {n} {v} ({a})" for (n, a), v in sorted(old.items()) if (n, a) not in new]
            + [f"~ {n} {old[n, a]} -> {v} ({a})" for (n, a), v in sorted(new.items())
               if (n, a) in old and old[n, a] != v])


def stale(matrix: Matrix, target: Target) -> list[str]:
    arch_list = ARCHS
    found = [foundation_unit(matrix)] if target.parent is None else []
    return [f"{u.lock_path.relative_to(matrix.root)}: {state}" for u in found + units(matrix, target)
            if (state := status(u, arch_list)) != "fresh"]


def lock(matrix: Matrix, target: Target | None, *, check: bool, update: list[str],
         update_all: bool = False) -> list[LockReport]:
    """Check, or (re)solve, the apt locks of a target's own layers (None: the foundation's), parents first."""
    todo = [foundation_unit(matrix)] if target is None else units(matrix, target)
    workspace = Workspace.of(matrix.root)  # apt's private lists and state, reused by later runs
    return [lock_unit(u, ARCHS, workspace.apt(u.name), check=check, update=update, update_all=update_all)
            for u in todo]
