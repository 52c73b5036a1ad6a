"""Whether one image stands on another: its lower layers are the other's layers, in order."""

from __future__ import annotations

from collections.abc import Sequence

from vre import engine


def stands_on(image: Sequence[str], base: Sequence[str]) -> bool:
    """Whether the layer digests `base` are the lower layers of `image` (both oldest first)."""
    return list(image[:len(base)]) == list(base)


def rootfs(image: str) -> list[str]:
    """The layer digests (RootFS diff ids) of a local image, oldest first."""
    info = engine.inspect(image)
    if not info:
        raise engine.EngineError(f"image {image} not found: build it first (vre build)")
    return list(info["RootFS"]["Layers"])


def stacked(*images: str) -> bool:
    """Each image stands on the previous one (the build's content, image and release stages: the tagged content is
    the tested image's, whose release files describe the published image)."""
    layers = [rootfs(image) for image in images]
    return all(stands_on(upper, lower) for lower, upper in zip(layers, layers[1:]))
