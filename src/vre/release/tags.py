"""The registry tags of a published image, after jupyter/docker-stacks' taggers: each tagger is a small function of
what is published, returning its tags (maybe none).

Every tag starts with the target's flavor[-variant] (`debian`, `debian-cpu`), so no tag of one flavor or variant can
name another's image. Immutable tags (date, revision) name one image for good; moving tags (`debian-cpu`, `latest`)
follow the newest published image.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from vre.matrix import Matrix, Target

REVISION_LABEL = "org.opencontainers.image.revision"
COMMIT = re.compile(r"^[0-9a-f]{40}$")  # a clean commit: build.labels() appends -dirty to an uncommitted tree's


@dataclass(frozen=True)
class Subject:
    """What the taggers look at: the target, its image's revision label, the publishing day (UTC)."""

    target: Target
    revision: str
    day: date
    default: bool  # the image's default flavor and variant (the first ones the matrix lists for it)


Tagger = Callable[[Subject], list[str]]


def date_tag(s: Subject) -> list[str]:
    return [f"{s.target.tag}-{s.day:%Y-%m-%d}"]


def revision_tag(s: Subject) -> list[str]:
    # Only a clean commit names the content: a dirty or unknown tree's image gets no revision tag.
    return [f"{s.target.tag}-{s.revision[:12]}"] if COMMIT.match(s.revision) else []


def flavor_tag(s: Subject) -> list[str]:
    return [s.target.tag]


def latest_tag(s: Subject) -> list[str]:
    return ["latest"] if s.default else []


IMMUTABLE: tuple[Tagger, ...] = (date_tag, revision_tag)
MOVING: tuple[Tagger, ...] = (flavor_tag, latest_tag)


@dataclass(frozen=True)
class Tags:
    immutable: tuple[str, ...]
    moving: tuple[str, ...]


def is_default(matrix: Matrix, target: Target) -> bool:
    image = matrix.spec.images[target.image]
    return target.flavor == image.flavors[0] and target.variant == (image.variants[0] if image.variants else None)


def tags(matrix: Matrix, target: Target, revision: str, day: date) -> Tags:
    subject = Subject(target=target, revision=revision, day=day, default=is_default(matrix, target))
    return Tags(immutable=tuple(t for tagger in IMMUTABLE for t in tagger(subject)),
                moving=tuple(t for tagger in MOVING for t in tagger(subject)))
