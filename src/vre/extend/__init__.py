"""`vre extend BASE_IMAGE DIR`: a repo2docker-style folder added to a published eo-vre image, locked on top of the
image's own locks (an extension only adds packages), built with the image's installer, tested with the image's compat
suite and the folder's tests, and described (manifest, SBOM, release notes) against the image.

Modules, one job each: folder (what DIR holds, checked), baseimage (what the image holds: layers, locks, packages),
pip, conda and apt (each ecosystem's lock and refusals), build (stage, build, test, describe, tag).
"""

from __future__ import annotations

from vre.errors import USAGE, VreError


class ExtendError(VreError):
    """Why an extension was refused (exit 2: the folder or the image cannot be extended as asked, nothing built) or
    failed (exit 1, errors.FAILED: the build or a test; nothing tagged); the message names the file, field or
    package and what is expected."""

    exit_code = USAGE
