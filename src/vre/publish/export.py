"""Export a built image for HPC runtimes that run without a Docker engine or root.

- charliecloud: the image's filesystem as a directory, for `ch-run DIR -- CMD`;
- squashfs: the same tree in one SquashFS file, which `ch-run` mounts itself (FUSE) and Apptainer runs too;
- podman: a docker-archive tar, for `podman load` by any (rootless) user;
- sif: an Apptainer SIF, made by `apptainer build` (only where apptainer is installed).

Each export is written beside its destination under a temporary name and renamed at the end: a failed or
interrupted export leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vre import engine
from vre.errors import USAGE, VreError

FORMATS = ("charliecloud", "squashfs", "podman", "sif")
SUFFIX = {"charliecloud": "", "squashfs": ".sqfs", "podman": ".tar", "sif": ".sif"}
# The image's HOME is Docker's; HPC runtimes run with the host's HOME (ch-run --home), so the exported environment
# does not override it.
HOST_VARIABLES = ("HOME",)
MOUNT_POINTS = ("home", "tmp", "dev", "proc", "sys", "mnt", "etc/slurm", "run/munge")


class ExportError(VreError):
    """Bad input (format, image, output) or a missing tool: exit code 2; a failed step: 1."""


@dataclass(frozen=True)
class Exported:
    ref: str
    fmt: str
    path: Path
    size: int       # bytes on disk
    seconds: float


def default_output(ref: str, fmt: str) -> Path:
    """eo-vre/base-geo:debian -> eo-vre-base-geo-debian[.sqfs|.tar|.sif] in the current directory."""
    return Path(ref.replace("/", "-").replace(":", "-").replace("@", "-") + SUFFIX[fmt])


def disk_usage(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*"))


def ch_environment(config_env: list[str]) -> str:
    """/ch/environment for `ch-run --set-env`: the image's ENV, one NAME=VALUE a line, without the host's own."""
    keep = [item for item in config_env if item.split("=", 1)[0] not in HOST_VARIABLES]
    return "".join(f"{item}\n" for item in keep)


@contextmanager
def _staged(output: Path) -> Iterator[Path]:
    """A temporary path beside OUTPUT, renamed to OUTPUT when the block succeeds and removed when it does not."""
    if output.exists():
        raise ExportError(f"{output} exists: remove it or choose another --output", USAGE)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        staged = work / "out"
        yield staged
        if staged.is_file():
            staged.chmod(0o644)  # docker save writes 0600: the export is for the runtime's users
        staged.rename(output)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ExportError(f"`{tool}` not found on PATH: install {package}", USAGE)
    return path


def _unpack(ref: str, config: dict[str, Any], dest: Path) -> None:
    """The image's flattened filesystem (docker export of a container never started) plus /ch/environment."""
    tar = _need("tar", "tar")
    dest.mkdir()
    container = engine.docker("create", ref, "true").stdout.decode().strip()
    try:
        export = subprocess.Popen([engine.client(), "export", container], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=engine.env())
        assert export.stdout is not None and export.stderr is not None  # both are pipes
        # Device nodes cannot be made without root and are not needed: ch-run binds the host's /dev.
        untar = subprocess.run([tar, "-x", "-C", str(dest), "--no-same-owner", "--exclude=./dev/*", "--exclude=dev/*"],
                               stdin=export.stdout, capture_output=True)
        export.stdout.close()
        err = export.stderr.read().decode(errors="replace")
        if export.wait() != 0 or untar.returncode != 0:
            raise ExportError(f"docker export {ref} | tar -x failed: {err.strip()} "
                              f"{untar.stderr.decode(errors='replace').strip()}")
    finally:
        engine.docker("rm", "-f", container, check=False)
    (dest / "ch").mkdir(exist_ok=True)
    (dest / "ch" / "environment").write_text(ch_environment(config.get("Env") or []))
    (dest / "ch" / "metadata.json").write_text(json.dumps(
        {"ref": ref, "id": config["_id"], "entrypoint": config.get("Entrypoint"), "cmd": config.get("Cmd"),
         "workdir": config.get("WorkingDir")}, indent=2) + "\n")
    # ch-run cannot make mount points in a read-only image: those it binds itself, and those HPC sites bind for
    # jobs that submit jobs (Slurm's config, munge's socket).
    for mount in MOUNT_POINTS:
        (dest / mount).mkdir(parents=True, exist_ok=True)


def export(ref: str, fmt: str, output: Path | None = None) -> Exported:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}", USAGE)
    info = engine.inspect(ref)
    if info is None:
        raise ExportError(f"no image {ref} in the Docker engine: build it first (vre build ...)", USAGE)
    config = {**(info.get("Config") or {}), "_id": info["Id"]}
    output = output or default_output(ref, fmt)
    # The tools first: a missing one fails before any work.
    apptainer = _need("apptainer", "Apptainer (https://apptainer.org; not in Debian 12)") if fmt == "sif" else ""
    mksquashfs = _need("mksquashfs", "squashfs-tools") if fmt == "squashfs" else ""
    start = time.monotonic()
    with _staged(output) as staged:
        if fmt == "charliecloud":
            _unpack(ref, config, staged)
        elif fmt == "squashfs":
            tree = staged.parent / "tree"
            _unpack(ref, config, tree)
            # zstd: fast to decompress for FUSE reads; level 3, not mksquashfs's 15, which takes several times as
            # long for a few percent. -no-xattrs: ch-run ignores them and unprivileged users could not set them back.
            proc = subprocess.run([mksquashfs, str(tree), str(staged), "-noappend", "-quiet", "-no-progress",
                                   "-comp", "zstd", "-Xcompression-level", "3", "-no-xattrs"], capture_output=True)
            if proc.returncode != 0:
                raise ExportError(f"mksquashfs failed: {proc.stderr.decode(errors='replace').strip()}")
        elif fmt == "podman":
            engine.docker("save", "-o", str(staged), ref)
        else:
            archive = staged.parent / "image.tar"
            engine.docker("save", "-o", str(archive), ref)
            proc = subprocess.run([apptainer, "build", str(staged), f"docker-archive://{archive}"],
                                  capture_output=True)
            if proc.returncode != 0:
                raise ExportError(f"apptainer build failed: {proc.stderr.decode(errors='replace').strip()[-2000:]}")
    return Exported(ref, fmt, output, disk_usage(output), time.monotonic() - start)
