"""An image's manifest: its apt, pip, conda and npm packages with their versions, its size and its layers' sizes.

Read from the image itself: `docker image inspect` and `docker history` for the figures, its /opt/vre (manifest.json,
written by images/foundation/vre-manifest: pip and conda; layers.txt; each layer's spec and lock files) and a probe
run on the image's own Python (src/vre/release/image_probe.py: npm packages, Debian packages with their architectures).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from pydantic import BaseModel

from vre import engine
from vre.lock.apt import left_out_of
from vre.release.packages import ECOSYSTEMS, Package
from vre.sizes import human_size

PROBE = Path(__file__).with_name("image_probe.py")


class ImageLayer(BaseModel):
    created_by: str  # the build step that made it
    size: int  # bytes


class Manifest(BaseModel):
    ref: str  # what it was read from: a tag, or an image id
    image_id: str
    revision: str = ""  # org.opencontainers.image.revision
    created: str = ""  # org.opencontainers.image.created (the commit time)
    flavor: str = ""
    variant: str = ""
    layers: list[str] = []  # the eo-vre layers installed, in order
    platform: str = ""  # e.g. linux/amd64
    os: str = ""  # e.g. Debian GNU/Linux 12 (bookworm)
    distro: str = ""  # <os-release ID>-<VERSION_ID>, e.g. debian-12: the distro of its pkg:deb purls
    size: int = 0  # bytes
    image_layers: list[ImageLayer] = []  # oldest first
    packages: dict[str, list[Package]] = {}  # ecosystem (apt, pip, conda, npm) -> packages, sorted
    # Debian packages its layers want elsewhere but not on its platform (apt.txt's `[arch]`, e.g. OTB: amd64 only)
    left_out: list[str] = []

    def count(self, ecosystem: str) -> int:
        return len(self.packages.get(ecosystem, []))


def _docker_out(*args: str, timeout: float = 600) -> bytes:
    out: bytes = engine.docker(*args, timeout=timeout).stdout
    return out


def extract(image: str, folder: str, dest: Path) -> Path:
    """Copy the image's `folder` to dest (a tar stream out of a throwaway container); returns dest."""
    data = _docker_out("run", "--rm", "--network", "none", "--entrypoint", "tar", image, "-C", folder, "-cf", "-", ".")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter=_files_only)
    return dest


def _files_only(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """Regular files and folders, safely: links (e.g. the conda flavor's /opt/vre/tools/bin/python3 -> /usr/...) are
    not what a manifest reads, and an absolute one would be refused."""
    return None if member.issym() or member.islnk() else tarfile.data_filter(member, path)


def _probe(image: str) -> dict[str, Any]:
    out = engine.docker("run", "--rm", "-i", "--network", "none", "--entrypoint", "/usr/bin/python3", image, "-",
                        input=PROBE.read_bytes(), timeout=600).stdout
    found: dict[str, Any] = json.loads(out)
    return found


def layer_history(image: str) -> list[ImageLayer]:
    out = _docker_out("history", "--human=false", "--no-trunc", "--format", "{{json .}}", image).decode()
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [ImageLayer(created_by=row["CreatedBy"].removesuffix(" # buildkit").strip(), size=int(row["Size"]))
            for row in reversed(rows)]


def collect(image: str, vre_dir: Path, ref: str | None = None) -> Manifest:
    """The manifest of `image` (a tag or an id; `ref` names it, default `image`); its /opt/vre is left in vre_dir
    (the SBOM reads the locks there)."""
    info = engine.inspect(image)
    if not info:
        raise engine.EngineError(f"image {image} not found: build it first (vre build)")
    extract(info["Id"], "/opt/vre", vre_dir)
    recorded = vre_dir / "manifest.json"
    if not recorded.is_file():
        raise engine.EngineError(f"{image}: no /opt/vre/manifest.json (not an eo-vre image, or built before "
                                 "images/foundation/vre-manifest existed)")
    installed = json.loads(recorded.read_text())
    probe = _probe(info["Id"])
    labels = engine.labels(info)
    packages = {
        "apt": [Package(name=name, version=version, arch=arch) for name, version, arch in probe["dpkg"]],
        "pip": [Package(name=canonicalize_name(name), version=version)
                for name, version in installed.get("pip", {}).items()],
        "conda": [Package(name=name, version=spec.partition("=")[0], build=spec.partition("=")[2])
                  for name, spec in installed.get("conda", {}).items()],
        "npm": [Package(name=name, version=version) for name, version in probe["npm"]],
    }
    arch = info.get("Architecture", "")
    left_out = sorted({name for lock in vre_dir.glob("layers/*/apt.lock") for name in left_out_of(lock).get(arch, [])})
    return Manifest(
        left_out=left_out, ref=ref or image, image_id=info["Id"],
        revision=labels.get("org.opencontainers.image.revision", ""),
        created=labels.get("org.opencontainers.image.created", ""), flavor=installed.get("flavor", ""),
        variant=labels.get("io.eo-vre.variant", ""), layers=installed.get("layers", []),
        platform=f"{info.get('Os', 'linux')}/{info.get('Architecture', '')}",
        os=probe["os"].get("PRETTY_NAME", ""), distro="-".join(probe["os"].get(k, "") for k in ("ID", "VERSION_ID")),
        size=info["Size"], image_layers=layer_history(info["Id"]),
        packages={eco: sorted(packages[eco], key=lambda p: (p.name, p.version)) for eco in ECOSYSTEMS})


def _cell(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def markdown(manifest: Manifest) -> str:
    """The manifest as a Markdown page: summary, image layers, then every package per ecosystem."""
    counts = ", ".join(f"{manifest.count(eco)} {eco}" for eco in ECOSYSTEMS)
    rows = [("image", f"`{manifest.ref}`"), ("image id", f"`{manifest.image_id}`"),
            ("eo-vre layers", ", ".join(manifest.layers) or "-"), ("flavor", manifest.flavor or "-"),
            ("variant", manifest.variant or "-"), ("revision", f"`{manifest.revision}`" if manifest.revision else "-"),
            ("created", manifest.created or "-"), ("platform", f"{manifest.platform} ({manifest.os})"),
            ("size", f"{human_size(manifest.size)} in {len(manifest.image_layers)} layers"), ("packages", counts)]
    if manifest.left_out:
        rows.append(("left out on this platform", ", ".join(manifest.left_out) + " (the layers' apt.txt want them "
                     "on other platforms only: Debian builds none for this one)"))
    lines = [f"# {manifest.ref}", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), "",
             "## Image layers", "", "Oldest first, as `docker history` reports them.", "",
             "| # | size | created by |", "|---:|---:|---|"]
    lines += [f"| {i} | {human_size(layer.size)} | " + (f"`{_cell(layer.created_by)}`" if layer.created_by else
                                                          "(base image)") + " |"
              for i, layer in enumerate(manifest.image_layers, 1)]
    for eco in ECOSYSTEMS:
        packages = manifest.packages.get(eco, [])
        lines += ["", f"## {eco} packages ({len(packages)})", ""]
        if not packages:
            lines.append("None.")
            continue
        extra = {"apt": "architecture", "conda": "build"}.get(eco)
        lines += [f"| package | version |{f' {extra} |' if extra else ''}",
                  f"|---|---|{'---|' if extra else ''}"]
        lines += [f"| {_cell(p.name)} | {_cell(p.version)} |" + (f" {p.arch if eco == 'apt' else p.build} |" if extra
                                                                  else "") for p in packages]
    return "\n".join(lines) + "\n"
