"""The filesystem layers of a local image, each named by the build step that made it and sized: what a user who has
one image pulls to get another (uncompressed sizes: the compressed ones are known only to a registry)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vre import engine
from vre.release.manifest import layer_history

# Dockerfile instructions that only change the image config: their history rows have no layer.
METADATA = {"ARG", "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "SHELL",
            "STOPSIGNAL", "USER", "VOLUME"}


@dataclass(frozen=True)
class Layer:
    digest: str  # the RootFS diff id (sha256 of the uncompressed tar)
    size: int  # bytes, uncompressed
    step: str  # the build step that made it ("" for an imported base)


def layers(ref: str) -> list[Layer]:
    """The image's layers, oldest first. `docker history` lists config-only steps too, and a step that made an empty
    layer (a COPY of an empty folder, a WORKDIR) has size 0 like them: a row makes a layer unless it is a config-only
    instruction; the count must match RootFS, or the names would be wrong."""
    info = engine.inspect(ref)
    if not info:
        raise engine.EngineError(f"image {ref} not found: build it first (vre build)")
    digests = info["RootFS"]["Layers"]
    steps = [row for row in layer_history(info["Id"]) if row.size or row.created_by.split(" ", 1)[0] not in METADATA]
    if len(steps) != len(digests):
        raise engine.EngineError(f"{ref}: {len(digests)} layers but {len(steps)} history rows that make one: "
                                 "cannot tell which step made which layer")
    return [Layer(digest, row.size, row.created_by) for digest, row in zip(digests, steps)]


def missing(new: list[Layer], old: list[Layer]) -> list[Layer]:
    """The layers of `new` that `old` lacks: what a user who has `old` pulls to update to `new`."""
    have = {layer.digest for layer in old}
    return [layer for layer in new if layer.digest not in have]


def digests(found: list[Layer]) -> list[str]:
    return [layer.digest for layer in found]


def to_json(found: list[Layer]) -> list[dict]:
    return [asdict(layer) for layer in found]


def from_json(rows: list[dict]) -> list[Layer]:
    return [Layer(**row) for row in rows]
