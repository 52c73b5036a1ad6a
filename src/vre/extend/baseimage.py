"""What an eo-vre image tells an extension: its flavor, its layers with their spec and lock files, and every package
installed in it (/opt/vre, read out of the image once)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from vre import engine
from vre.release import manifest
from vre.extend import ExtendError


@dataclass(frozen=True)
class BaseImage:
    ref: str  # as the user named it
    image_id: str
    flavor: str
    layers: list[str]  # installed layers, in order
    vre_dir: Path  # the image's /opt/vre, copied out
    apt: dict[str, str]  # Debian package -> installed version
    pip: dict[str, str]  # canonical name -> installed version (the environment's, Debian's python3-* included)
    conda: dict[str, str]  # name -> version=build
    labels: dict[str, str]

    def layer_dir(self, layer: str) -> Path:
        return self.vre_dir / "layers" / layer

    @property
    def name(self) -> str:
        """The image as messages name it: its eo-vre image name (e.g. base-geo), else its reference."""
        return self.labels.get("io.eo-vre.image") or self.ref


def read(ref: str, dest: Path) -> BaseImage:
    """Read image `ref` (a local tag or id); its /opt/vre goes to dest. Missing or not an eo-vre image: ExtendError."""
    info = engine.inspect(ref)
    if info is None:
        raise ExtendError(f"BASE_IMAGE {ref}: no such image here (expected a local eo-vre image: build it with "
                          "`vre build` or `docker pull` it first)")
    try:
        manifest.extract(info["Id"], "/opt/vre", dest)
    except engine.EngineError as e:
        raise ExtendError(f"BASE_IMAGE {ref}: its /opt/vre cannot be read ({e})") from None
    recorded = dest / "manifest.json"
    if not recorded.is_file() or not (dest / "layers.txt").is_file():
        raise ExtendError(f"BASE_IMAGE {ref}: not an eo-vre image (expected /opt/vre/manifest.json and "
                          "/opt/vre/layers.txt, which every eo-vre image has)")
    installed = json.loads(recorded.read_text())
    labels = engine.labels(info)
    flavor = installed.get("flavor") or labels.get("io.eo-vre.flavor", "")
    if flavor not in ("debian", "conda"):
        raise ExtendError(f"BASE_IMAGE {ref}: /opt/vre/manifest.json flavor is {flavor!r} (expected debian or conda)")
    return BaseImage(ref=ref, image_id=info["Id"], flavor=flavor, layers=installed.get("layers", []), vre_dir=dest,
                     apt=installed.get("apt", {}), conda=installed.get("conda", {}), labels=labels,
                     pip={canonicalize_name(n): v for n, v in installed.get("pip", {}).items()})
