"""The matrix (images/matrix.yaml): images, parents, flavors, variants, platforms, and the targets it expands to."""

from vre.matrix.model import (Bootstrap, Image, Layer, Matrix, MatrixError, Target, arch, arch_suffix, load,
                              target_key)

__all__ = ["Bootstrap", "Image", "Layer", "Matrix", "MatrixError", "Target", "arch", "arch_suffix", "load",
           "target_key"]
