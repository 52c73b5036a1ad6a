#!/bin/sh
# deep-learning: one OpenMP runtime on arm64, LLVM's (Debian's libomp5-14, from the layer's apt.txt).
#
# Why: PyPI's aarch64 TensorFlow is built with LLVM's OpenMP (it calls __kmpc_*, which GNU's libgomp lacks) and
# bundles that runtime; torch, scikit-learn, eccodes and torch.compile's kernels use GNU's libgomp.so.1. A process
# that maps both runs two OpenMP thread pools (TensorFlow's import maps scikit-learn through keras). LLVM's runtime
# also implements libgomp's entry points (GOMP_1.0 to GOMP_5.0.1, OMP_1.0 to OMP_5.0; the image's libgomp users need
# GOMP_4.0 and OMP_4.5 at most), so libgomp.so.1 becomes a link to it, as conda-forge's llvm OpenMP flavour does;
# postBuild points TensorFlow's bundled copy at it too. amd64 needs none of it: tensorflow-cpu bundles no runtime.
#
# Contract (as base-geo's build.sh): run as root in a builder stage FROM the parent; $1's content is copied to /.
# It writes only, on arm64 (debian flavor): $1/usr/lib/aarch64-linux-gnu/libgomp.so.1 -> libomp.so.5
set -eu

out=${1:?usage: build.sh OUTPUT_DIR}
# (the conda flavor's environments bring their own OpenMP runtime, conda-forge's _openmp_mutex)
[ "${VRE_FLAVOR:-}" = debian ] && [ "$(dpkg --print-architecture)" = arm64 ] || exit 0
mkdir -p "$out/usr/lib/aarch64-linux-gnu"
ln -sfn libomp.so.5 "$out/usr/lib/aarch64-linux-gnu/libgomp.so.1"
echo "[deep-learning build.sh] libgomp.so.1 -> libomp.so.5 (LLVM's OpenMP, the one runtime on arm64)"
