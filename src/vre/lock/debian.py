"""Hash-locked PyPI requirements for the debian flavor, made with uv.

A layer's spec folder holds `requirements.in` (what the layer wants) and optionally `constraints.txt` (versions that
its Debian packages provide: resolved against, never installed from PyPI). The lock, `requirements.txt`, is solved
with every package of the ancestors' locks pinned, so a child layer only adds packages; it starts with a line
`# vre-input-hash: <sha256>` over everything the solve read, which is how stale locks are found.

A separate environment (envs/NAME) may also hold `shared.txt`: packages (names or globs) of its layer's main
environment that it uses from there instead of installing its own (deep-learning-gpu's TensorFlow uses torch's CUDA
wheels). They are solved at the main lock's versions, left out of its lock and named in it on `# vre-shared:` lines
for the installer, which links them in. And `shadows.txt`: Debian-provided packages of which it installs its own
version, for that venv only (TensorFlow's numpy >= 1.26 over Debian's 1.24.2).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vre.errors import VreError
from vre.matrix import Layer, Matrix, Target

PYTHON_VERSION = "3.11"  # Debian bookworm's python3, which the venv extends
HASH_LINE = re.compile(r"^# vre-input-hash: (?P<hash>[0-9a-f]{64})$", re.M)
SHARED_LINE = "# vre-shared: "
SHARED, SHADOWS = "shared.txt", "shadows.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?P<marker>[ \t]*;[^\\\n]*)?", re.M)


class LockError(VreError):
    pass


@dataclass
class LockReport:
    target: str
    layer: str
    status: str  # fresh | stale | missing | locked
    changes: list[str] = field(default_factory=list)


def pins(text: str) -> dict[str, str]:
    return {_norm(m["name"]): m["version"] for m in PIN.finditer(text)}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def patterns(path: Path) -> list[str]:
    """The names or globs of a list file (heavy.txt, shared.txt, shadows.txt): words, one or more a line, with
    comments; none when there is no such file."""
    if not path.is_file():
        return []
    return [word for line in path.read_text().splitlines() for word in line.split("#")[0].split()]


def _matches(name: str, wanted: list[str]) -> bool:
    return any(fnmatch.fnmatch(_norm(name), _norm(p)) for p in wanted)


def shared(text: str) -> dict[str, str]:
    """The pins a separate environment's lock uses from its layer's main environment (`# vre-shared:` lines)."""
    return pins("\n".join(line[len(SHARED_LINE):] for line in text.splitlines() if line.startswith(SHARED_LINE)))


def _ancestor_layers(matrix: Matrix, target: Target, layer: Layer) -> list[Layer]:
    """Layers installed before `layer` in this target's image: the ancestors', then the target's earlier ones."""
    return matrix.image_layers(target.parent) + list(target.layers[: target.layers.index(layer)])


def _for_image_python(marker: str | None) -> str:
    """A constraint's marker, narrowed to the image's Python. uv's universal solve also forks for later Pythons,
    where a package may declare other bounds (tensorflow 2.17: numpy>=1.26 on Python 3.12+): a pin that holds for
    the image's Python only (Debian's numpy 1.24.2) must not veto those forks, or nothing solves."""
    own = f'python_version == "{PYTHON_VERSION}"'
    marker = (marker or "").strip().lstrip(";").strip()
    return f" ; ({marker}) and {own}" if marker else f" ; {own}"


def _inputs(matrix: Matrix, target: Target, layer: Layer) -> tuple[str, str]:
    """(input hash, text of the constraints: the layer's own plus every earlier layer's pins).

    A separate environment (envs/NAME) sees Debian's packages but not the main environment: only the
    Debian-provided versions (constraints.txt) of its layer and the earlier ones are fixed for it.
    """
    parts = [f"python {PYTHON_VERSION}", (layer.spec_dir / "requirements.in").read_text()]
    constraints: list[str] = []
    owner = _owner(target, layer)
    if owner == layer:
        sources = [lay.spec_dir / f for lay in _ancestor_layers(matrix, target, layer)
                   for f in ("constraints.txt", "requirements.txt")]
    else:
        sources = [lay.spec_dir / "constraints.txt" for lay in _ancestor_layers(matrix, target, owner) + [owner]]
    own = patterns(layer.spec_dir / SHADOWS)
    for path in sources + [layer.spec_dir / "constraints.txt"]:
        if path.is_file():
            text = path.read_text()
            parts.append(text)
            # Every pin with its environment marker: a lock may pin one package twice (e.g. soupsieve 2.10 for
            # python < 3.11.5 and 4.1.2 above); keeping only one of them makes the child's solve impossible.
            constraints.extend(f"{m['name']}=={m['version']}{_for_image_python(m['marker'])}"
                               for m in PIN.finditer(text) if not _matches(m["name"], own))
    if own:
        parts.append(" ".join(own))
    if owner != layer and (share := _shared_pins(target, layer)):
        # without markers: this venv's copy of them is the main environment's, whatever the Python or platform
        parts.append(" ".join(f"{name}=={version}" for name, version in share.items()))
        constraints.extend(f"{name}=={version}" for name, version in share.items())
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return digest, "\n".join(constraints) + "\n"


def _shared_pins(target: Target, layer: Layer) -> dict[str, str]:
    """The main environment's pins that a separate environment uses from there (its shared.txt); none for a layer's
    main environment itself."""
    owner = _owner(target, layer)
    main_lock = owner.spec_dir / "requirements.txt"
    if owner == layer or not main_lock.is_file():
        return {}
    return pins(select(main_lock.read_text(), patterns(layer.spec_dir / SHARED)))


def home(matrix: Matrix, target: Target, layer: Layer) -> Target:
    """The target a layer's lock belongs to. An image that includes another image's layer (`vre`: include
    [desktop, ide]) installs that layer's lock as is: its pins are solved once, on the included image's own parent
    chain, and `pip check` at install time proves they also fit the including image."""
    if layer.name == target.image:
        return target
    for candidate in matrix.targets.values():
        if candidate.image == layer.name and candidate.flavor == target.flavor and layer in candidate.layers:
            return candidate
    return target


def _side_envs(layer: Layer) -> list[Layer]:
    """A layer's separate environments, envs/NAME/requirements.in (as the conda flavor's envs/NAME/environment.yml),
    each installed into a venv of its own by the layer (deep-learning-gpu's envs/tensorflow: TensorFlow, which needs
    a newer numpy than Debian's, on the main environment's CUDA libraries)."""
    return [Layer(name=f"{layer.name}/envs/{path.parent.name}", spec_dir=path.parent, image_dir=layer.image_dir)
            for path in sorted(layer.spec_dir.glob("envs/*/requirements.in"))]


def _owner(target: Target, layer: Layer) -> Layer:
    """The target's layer that `layer` is (or is a separate environment of)."""
    return next(lay for lay in target.layers if lay.spec_dir in (layer.spec_dir, layer.spec_dir.parent.parent))


def _locked_layers(target: Target) -> list[Layer]:
    return [env for layer in target.layers
            for env in ([layer] if (layer.spec_dir / "requirements.in").is_file() else []) + _side_envs(layer)]


def status(matrix: Matrix, target: Target, layer: Layer) -> str:
    target = home(matrix, target, layer)
    lock = layer.spec_dir / "requirements.txt"
    if not lock.is_file():
        return "missing"
    recorded = HASH_LINE.search(lock.read_text())
    return "fresh" if recorded and recorded["hash"] == _inputs(matrix, target, layer)[0] else "stale"


def stale(matrix: Matrix, target: Target) -> list[str]:
    """One line per layer of the target whose lock is missing or older than its inputs."""
    return [f"{layer.spec_dir.relative_to(matrix.root)}/requirements.txt: {state}"
            for layer in _locked_layers(target) if (state := status(matrix, target, layer)) != "fresh"]


def lock(matrix: Matrix, target: Target, *, check: bool, update: list[str],
         update_all: bool = False) -> list[LockReport]:
    """Check, or (re)solve, the requirements locks of the target's layers (`update_all`: every package to its newest
    allowed version, the existing pins ignored)."""
    reports = []
    for layer in _locked_layers(target):
        state = status(matrix, target, layer)
        report = LockReport(target=target.key, layer=layer.name, status=state)
        if not check and (state != "fresh" or update or update_all):
            report.changes = _solve(matrix, home(matrix, target, layer), layer, update, update_all)
            report.status = "locked"
        reports.append(report)
    return reports


def _solve(matrix: Matrix, target: Target, layer: Layer, update: list[str], update_all: bool = False) -> list[str]:
    digest, constraints = _inputs(matrix, target, layer)
    lock_path = layer.spec_dir / "requirements.txt"
    before = pins(lock_path.read_text()) if lock_path.is_file() else {}
    # The shared packages are solved (so that their pins are checked against this environment's ranges) and then
    # moved from the lock's body to `# vre-shared:` lines: only those the solve actually needs are named there.
    share = _shared_pins(target, layer)
    provided = sorted(pins(constraints).keys() - share.keys())
    with tempfile.TemporaryDirectory() as tmp:
        constraints_file = Path(tmp) / "constraints.txt"
        constraints_file.write_text(constraints)
        out = Path(tmp) / "requirements.txt"
        if lock_path.is_file() and not update_all:
            out.write_text(lock_path.read_text())  # uv prefers the pins already there: only updates move
        cmd = ["uv", "pip", "compile", str(layer.spec_dir / "requirements.in"), "-c", str(constraints_file),
               "--generate-hashes", "--universal", "--python-version", PYTHON_VERSION, "--quiet",
               "--custom-compile-command", "vre lock", "-o", str(out)]
        wheels = matrix.wheels(target)
        if wheels:
            cmd += ["--find-links", str(wheels)]  # the hashes of its wheels go into the lock like PyPI's
        for name in provided:
            cmd += ["--no-emit-package", name]
        for name in update:
            cmd += ["--upgrade-package", name]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise LockError(f"{layer.spec_dir.relative_to(matrix.root)}/requirements.in: no solution on top of "
                            f"{target.parent or 'the Debian packages'} (its pins and constraints.txt are fixed):\n"
                            f"{result.stderr.strip()}\nRelax the requirement, or update the parent layer first.")
        body = out.read_text()
    used = {name: version for name, version in pins(body).items() if name in share}
    if used:
        body = drop(body, list(used))
        body = "".join(f"{SHARED_LINE}{name}=={version}\n" for name, version in sorted(used.items())) + body
    lock_path.write_text(f"# vre-input-hash: {digest}\n{body}")
    after = pins(body)
    return diff(before, after)


def diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    changes = [f"+ {n} {after[n]}" for n in sorted(after.keys() - before.keys())]
    changes += [f"- {n} {before[n]}" for n in sorted(before.keys() - after.keys())]
    changes += [f"~ {n} {before[n]} -> {after[n]}" for n in sorted(before.keys() & after.keys())
                if before[n] != after[n]]
    return changes


def select(text: str, patterns: list[str]) -> str:
    """The entries of a hash-locked requirements.txt (each with its hashes and marker) whose name matches one of
    `patterns` (names or globs such as `nvidia-*`, normalized as pip names), in the lock's order."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", re.sub(r"#[^\n]*", "", text))
    return "".join(entry.rstrip() + "\n" for entry in entries
                   if (m := PIN.match(entry)) and _matches(m["name"], patterns))


def drop(text: str, patterns: list[str]) -> str:
    """A requirements.txt without the entries (each with its hashes and `# via` lines) whose name matches."""
    entries = re.split(r"(?<=\n)(?=[A-Za-z0-9])", text)
    return "".join(entry for entry in entries if not ((m := PIN.match(entry)) and _matches(m["name"], patterns)))
