"""An image's release files, embedded in it and published beside it: its manifest (manifest.json, manifest.md) and
its CycloneDX SBOM (sbom.cdx.json).

`release_files` makes them from a built image; the factory adds them to it as its last layer under
/opt/vre/release/ (images/layer.Dockerfile); children never see that layer, they build FROM their parent's content
stage. `write_artifacts` copies them out of an image
for publishing (or makes them, for an image built without them).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from vre import engine
from vre.release import manifest, sbom
from vre.workspace import Workspace

RELEASE_DIR = "/opt/vre/release"
FILES = ("manifest.json", "manifest.md", "sbom.cdx.json")


def generate(image: str, out_dir: Path, ref: str | None = None) -> list[Path]:
    """Write the release files of `image` (a tag or an id; named `ref` in them) into out_dir."""
    with tempfile.TemporaryDirectory(prefix="vre-meta-") as tmp:
        found = manifest.collect(image, Path(tmp), ref=ref)
        locks = sbom.locked(Path(tmp) / "layers", found.layers, found.platform)
        bom = sbom.to_json(sbom.build(found, locks))
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {"manifest.json": found.model_dump_json(indent=1, exclude_defaults=True) + "\n",
             "manifest.md": manifest.markdown(found), "sbom.cdx.json": bom}
    for name, text in texts.items():
        (out_dir / name).write_text(text)
        (out_dir / name).chmod(0o644)  # readable by the image's user, whatever the umask
    return [out_dir / name for name in FILES]


def release_files(image_id: str, ref: str, workspace: Workspace) -> Path:
    """The folder of `image_id`'s release files (`ref` is the name they give the image), made once per image id: a
    rebuild that changed nothing reuses them. Raises engine.EngineError or sbom.SbomError on failure."""
    folder = workspace.release(image_id)
    if not all((folder / name).is_file() for name in FILES):
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
            generate(image_id, Path(tmp) / "files", ref=ref)
            (Path(tmp) / "files").rename(folder)  # whole or not at all
    return folder


def embedded(image: str, dest: Path) -> bool:
    """Copy the release files embedded in `image` to dest; False when the image has none."""
    try:
        manifest.extract(image, RELEASE_DIR, dest)
    except engine.EngineError:
        return False
    return all((dest / name).is_file() for name in FILES)


def write_artifacts(ref: str, out_dir: Path) -> list[Path]:
    """The release files of image `ref` in out_dir (see Workspace.artifacts), to publish beside it: the ones
    embedded in it, or, for an image built without them, made from it now."""
    if engine.image_id(ref) is None:
        raise engine.EngineError(f"image {ref} not found: build it first (vre build)")
    with tempfile.TemporaryDirectory(prefix="vre-release-") as tmp:
        if embedded(ref, Path(tmp)):
            out_dir.mkdir(parents=True, exist_ok=True)
            return [Path(shutil.copy(Path(tmp) / name, out_dir / name)) for name in FILES]
    return generate(ref, out_dir)


def image_manifest(ref: str) -> manifest.Manifest:
    """The manifest of image `ref`: the embedded one, or one read from the image now."""
    with tempfile.TemporaryDirectory(prefix="vre-release-") as tmp:
        if embedded(ref, Path(tmp)):
            return manifest.Manifest.model_validate_json((Path(tmp) / "manifest.json").read_text())
        return manifest.collect(ref, Path(tmp) / "vre")
