"""The base image of a flavor: a registry reference pinned by digest, or a Debian rootfs made with mmdebstrap.

A bootstrapped base is cached by its inputs: the tag carries a hash of suite, variant, mirror, packages and
SOURCE_DATE_EPOCH, so the same inputs never bootstrap twice and changed inputs never reuse a stale base.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from vre import engine
from vre.matrix import Bootstrap, Matrix, arch, arch_suffix


def dpkg_excludes(matrix: Matrix) -> Path:
    """dpkg's path filters for every image (no documentation): the bootstrap applies them from its first package."""
    return matrix.root / "images" / "foundation" / "dpkg-excludes"


def bootstrap_key(boot: Bootstrap, excludes: Path) -> str:
    inputs = boot.model_dump_json() + (excludes.read_text() if excludes.is_file() else "")
    return hashlib.sha256(inputs.encode()).hexdigest()[:12]


def base_ref(matrix: Matrix, flavor: str) -> str:
    base = matrix.spec.flavors[flavor].base
    if base.reference:
        return base.reference
    assert base.bootstrap is not None  # the matrix gives exactly one of reference and bootstrap
    key = bootstrap_key(base.bootstrap, dpkg_excludes(matrix))
    return f"{matrix.spec.name}/base:{base.bootstrap.suite}-{key}{arch_suffix(matrix.platform)}"


def ensure_base(matrix: Matrix, flavor: str, say: Callable[[str], None] = lambda _: None) -> str:
    """Make the flavor's base image available locally and return its reference."""
    base = matrix.spec.flavors[flavor].base
    ref = base_ref(matrix, flavor)
    if engine.image_id(ref):
        return ref
    if base.reference:
        say(f"pulling {ref}")
        engine.docker("pull", ref, capture=False)
        return ref
    boot = base.bootstrap
    assert boot is not None  # the matrix gives exactly one of reference and bootstrap
    if not shutil.which("mmdebstrap"):
        raise engine.EngineError("mmdebstrap not found: run `make setup` (installs mmdebstrap), "
                                 "or set flavors.<flavor>.base.reference in images/matrix.yaml")
    say(f"bootstrapping Debian {boot.suite} ({boot.variant}) with mmdebstrap into {ref}")
    cmd = ["mmdebstrap", f"--variant={boot.variant}", "--quiet"]
    if matrix.platform:
        # A foreign arch runs its maintainer scripts under qemu-user (binfmt); arch-test tells whether it can.
        check_emulation(matrix.platform)
        cmd.append(f"--arch={arch(matrix.platform)}")
    if boot.include:
        cmd.append("--include=" + ",".join(boot.include))
    if dpkg_excludes(matrix).is_file():
        cmd.append(f"--dpkgopt={dpkg_excludes(matrix)}")  # a file: mmdebstrap copies its lines into dpkg.cfg.d
    cmd += [boot.suite, "-", boot.mirror]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(boot.source_date_epoch)}
    if matrix.platform:
        _load_foreign(cmd, env, ref, matrix.platform)
        return ref
    rootfs = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    imported = subprocess.run([engine.client(), "import", "--change", 'CMD ["bash"]', "-", ref],
                              stdin=rootfs.stdout, capture_output=True, env=engine.env())
    assert rootfs.stdout is not None and rootfs.stderr is not None  # both PIPE
    rootfs.stdout.close()
    err = rootfs.stderr.read().decode(errors="replace")
    if rootfs.wait() != 0 or imported.returncode != 0:
        if imported.returncode == 0:
            engine.docker("image", "rm", ref, check=False)  # a partial rootfs must never be cached
        raise engine.EngineError(f"bootstrapping {ref} failed:\n{err}{imported.stderr.decode(errors='replace')}")
    return ref


def check_emulation(platform: str) -> None:
    """Fail early, saying what to install, when this machine can run neither natively nor under emulation the
    binaries of `platform` (arch-test runs a tiny binary of that arch)."""
    name = arch(platform)
    if not shutil.which("arch-test"):
        raise engine.EngineError(f"--platform {platform}: arch-test not found: run `make setup-emulation` (installs "
                                 "qemu-user-static, binfmt-support and arch-test)")
    found = subprocess.run(["arch-test", name], capture_output=True, text=True)
    if found.returncode != 0:
        raise engine.EngineError(f"--platform {platform}: this machine cannot run {name} binaries "
                                 f"({found.stdout.strip() or found.stderr.strip()}): run `make setup-emulation` "
                                 "(qemu-user-static registers its binfmt handlers)")


def _load_foreign(cmd: list[str], env: dict[str, str], ref: str, platform: str) -> None:
    """Bootstrap a rootfs of another arch and load it as an image of that platform. `docker import --platform`
    needs an experimental engine and otherwise records the engine's own arch, which BuildKit then refuses as a base
    for `--platform`: the image is written as a `docker save` archive whose config names the platform."""
    with tempfile.TemporaryDirectory(prefix="vre-base-") as tmp:
        layer = Path(tmp) / "layer.tar"
        with layer.open("wb") as out:
            made = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        if made.returncode != 0:
            raise engine.EngineError(f"bootstrapping {ref} failed:\n{made.stderr.decode(errors='replace')}")
        digest = hashlib.sha256()
        with layer.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        config = json.dumps({
            "architecture": arch(platform), "os": "linux", **({"variant": "v8"} if arch(platform) == "arm64" else {}),
            "config": {"Cmd": ["bash"]}, "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest.hexdigest()}"]},
            "history": [{"created_by": " ".join(cmd)}]}).encode()
        manifest = json.dumps([{"Config": "config.json", "RepoTags": [ref], "Layers": ["layer.tar"]}]).encode()
        archive = Path(tmp) / "image.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(layer, "layer.tar")
            for name, data in (("config.json", config), ("manifest.json", manifest)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        layer.unlink()
        engine.docker("load", "--quiet", "--input", str(archive))
