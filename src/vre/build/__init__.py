"""Building images: the base (base), contexts (context), labels and hashes (labels, hashing), one BuildKit call
(buildkit), the stacking check (stacking), and the orchestration, parents first (run)."""

from vre.build.options import DEFAULT_CA, BuildOptions, BuildResult
from vre.build.run import build, build_target, content_ref, parent_base

__all__ = ["DEFAULT_CA", "BuildOptions", "BuildResult", "build", "build_target", "content_ref", "parent_base"]
