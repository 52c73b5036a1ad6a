"""A CycloneDX SBOM (JSON, schema 1.6) of an image, made with cyclonedx-python-lib.

Components: the pip packages its requirements.txt locks pin (with every sha256 the lock allows), the conda (and
pip) packages its conda-lock.yml files install on the image's platform (sha256, md5), and the Debian and npm packages
installed in the image (npm ones with the integrity hash of the layer's package-lock.json when it pins them). Every
component has a purl: pkg:pypi, pkg:conda, pkg:deb/<distro id>, pkg:npm.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from importlib.metadata import version as dist_version
from pathlib import Path

from cyclonedx.contrib.this.builders import this_component
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from vre.errors import USAGE, VreError
from vre.lock.conda.spec import DOCKER_PLATFORMS
from vre.release.manifest import Manifest
from vre.release.packages import ECOSYSTEMS, Package, layer_locks

SCHEMA = SchemaVersion.V1_6


class SbomError(VreError):
    exit_code = USAGE


def locked(layers_dir: Path, layers: list[str], platform: str = "linux/amd64") -> dict[str, list[Package]]:
    """ecosystem -> what the lock files of these layers (folders of layers_dir, in install order) pin, for the
    image platform `platform` (conda locks hold several)."""
    merged: dict[str, list[Package]] = {eco: [] for eco in ECOSYSTEMS}
    for layer in layers:
        folder = layers_dir / layer
        if not folder.is_dir():
            raise SbomError(f"{folder}: missing (the image's /opt/vre/layers.txt lists layer {layer!r})")
        for eco, packages in layer_locks(folder, layer, DOCKER_PLATFORMS.get(platform, "linux-64")).items():
            merged[eco] += packages
    return merged


def _purl(eco: str, package: Package, distro: str) -> PackageURL:
    if eco == "pip":
        return PackageURL(type="pypi", name=package.name, version=package.version)
    if eco == "conda":
        channel, _, file = package.url.rpartition("/")
        qualifiers = {"build": package.build, "channel": channel.rpartition("/")[0], "subdir": package.arch,
                      "type": "conda" if file.endswith(".conda") else "tar.bz2"}
        return PackageURL(type="conda", name=package.name, version=package.version,
                          qualifiers={k: v for k, v in qualifiers.items() if v})
    if eco == "apt":
        qualifiers = {"arch": package.arch, "distro": distro}
        return PackageURL(type="deb", namespace=distro.partition("-")[0] or "debian", name=package.name,
                          version=package.version, qualifiers={k: v for k, v in qualifiers.items() if v})
    scope, _, name = package.name.rpartition("/")
    return PackageURL(type="npm", namespace=scope or None, name=name, version=package.version)


def _components(manifest: Manifest, locks: dict[str, list[Package]]) -> dict[str, Component]:
    """purl -> component; a package pinned by several layers (or at several places) is one component."""
    npm_hashes = {(p.name, p.version): p.hashes for p in locks.get("npm", [])}
    sources = {
        "pip": locks.get("pip", []), "conda": locks.get("conda", []),
        "apt": manifest.packages.get("apt", []),
        "npm": [p.model_copy(update={"hashes": npm_hashes.get((p.name, p.version), ())})
                for p in manifest.packages.get("npm", [])],
    }
    components: dict[str, Component] = {}
    for eco, packages in sources.items():
        for package in packages:
            purl = _purl(eco, package, manifest.distro)
            ref = purl.to_string()
            hashes = [HashType(alg=HashAlgorithm(alg), content=digest) for alg, digest in package.hashes]
            if ref in components:
                components[ref].hashes.update(hashes)
                continue
            properties = [Property(name="eo-vre:ecosystem", value=eco)]
            if package.layer:
                properties.append(Property(name="eo-vre:layer", value=package.layer))
            components[ref] = Component(name=package.name, version=package.version, purl=purl, bom_ref=ref,
                                        hashes=hashes, properties=properties)
    return components


def build(manifest: Manifest, locks: dict[str, list[Package]]) -> Bom:
    """The SBOM of the image `manifest` describes, whose layers' locks are `locks` (see locked())."""
    components = _components(manifest, locks)
    repository, _, tag = manifest.ref.rpartition(":") if "/" in manifest.ref else ("", "", "")
    properties = [Property(name=f"eo-vre:{key}", value=value) for key, value in (
        ("image-id", manifest.image_id), ("revision", manifest.revision), ("flavor", manifest.flavor),
        ("variant", manifest.variant), ("layers", " ".join(manifest.layers)), ("platform", manifest.platform)) if value]
    image = Component(type=ComponentType.CONTAINER, name=repository or manifest.ref, version=tag or None,
                      bom_ref="image", properties=properties)
    tools = [this_component(), Component(type=ComponentType.APPLICATION, name="eo-vre", version=dist_version("eo-vre"))]
    metadata = BomMetaData(component=image)
    metadata.tools.components.update(tools)
    # The commit time, not the wall clock, and a serial number derived from the content: the same image yields
    # the same SBOM, so embedding it (vre.meta) is a cache hit on a rebuild of the same commit.
    if manifest.created:
        metadata.timestamp = datetime.fromisoformat(manifest.created.replace("Z", "+00:00"))
    seed = "\n".join([manifest.ref, manifest.image_id, *sorted(components)])
    bom = Bom(components=components.values(), metadata=metadata, serial_number=uuid.uuid5(uuid.NAMESPACE_URL, seed))
    bom.register_dependency(image, components.values())
    return bom


def to_json(bom: Bom) -> str:
    """The SBOM as CycloneDX 1.6 JSON, checked against the schema (an invalid SBOM is an error, never written)."""
    text = JsonV1Dot6(bom).output_as_string(indent=1)
    error = JsonStrictValidator(SCHEMA).validate_str(text)
    if error is not None:
        raise SbomError(f"the SBOM does not validate against CycloneDX {SCHEMA.to_version()}: {error}")
    return text + "\n"
