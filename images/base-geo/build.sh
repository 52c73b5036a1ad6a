#!/bin/sh
# Builds OTB's Python bindings (otbApplication, SWIG) for the debian flavor of base-geo.
#
# Why: Debian bookworm ships Orfeo ToolBox 8.1.1 (otb-bin, libotb-apps) but built it without
# Python wrapping, and pyotb needs `import otbApplication`. We compile only the SWIG wrapper
# (Modules/Wrappers/SWIG from Debian's own otb source package) against Debian's libotb-dev,
# for Debian's python3 and python3-numpy; OTB itself is not rebuilt.
#
# Contract: run as root in a throwaway builder stage FROM the parent image; $1 is an output
# directory whose content is copied to / of the final image. It writes only:
#   $1/usr/lib/python3/dist-packages/otbApplication.py (+ __pycache__ .pyc)
#   $1/usr/lib/python3/dist-packages/_otbApplication.<EXT_SUFFIX>.so
#   $1/usr/local/etc/jupyter/jupyter_server_config.py (not OTB: the layer's Jupyter config, see the end)
#   $1/usr/lib/otb/applications -> symlink to Debian's multiarch application directory, an
#     arch-independent value for OTB_APPLICATION_PATH (and where pyotb looks by itself)
#   (only the Jupyter config on an arch Debian builds no OTB for: arm64)
# Runtime needs: otb-bin/libotb-apps and python3-numpy (all from the image's apt.txt).
set -eu

out=${1:?usage: build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
t0=$(date +%s)
step() { echo "[build.sh +$(( $(date +%s) - t0 ))s] $*"; }

# Not OTB: base-geo's Jupyter server config (the proxy's host allowlist for Dask dashboards), in the system config
# directory, beside what other layers put in their own files there or in the environment's.
install -D -m 0644 "$here/jupyter_server_config.py" "$out/usr/local/etc/jupyter/jupyter_server_config.py"

# Debian builds no OTB for some architectures (arm64): apt.txt's `[amd64]` leaves it out there, and the layer's lock
# then pins no libotb-apps for this one. No OTB, no bindings to build (pyotb is not installed there either).
arch=$(dpkg --print-architecture)
if ! awk -v a="$arch" '$1 == a && $2 == "libotb-apps" { found = 1 } END { exit !found }' "$here/apt.lock"; then
  step "no OTB for $arch (apt.lock pins no libotb-apps for it): no Python bindings to build"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=$work/src
mkdir -p "$src"

export DEBIAN_FRONTEND=noninteractive
# unsafe-io: no fsync while unpacking; this stage is thrown away anyway
apt_install() {
  apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
    -o Dpkg::Options::=--force-unsafe-io "$@"
}

step "apt-get update (with deb-src for Debian's otb source)"
echo "deb-src http://deb.debian.org/debian bookworm main" > /etc/apt/sources.list.d/otb-src.list
apt-get update -qq

# Same source version as the libotb-dev we build against (a binNMU suffix +bN is not in the source).
otb_version=$(apt-cache show --no-all-versions libotb-dev | sed -n 's/^Version: //p')
otb_version=${otb_version%+b[0-9]*}

# apt checks the files against the signed Sources index (dpkg-dev is not needed for
# --download-only); it downloads as user _apt, so give it the directory.
# The orig tarball is ~700 MB (mostly test data) in a single xz block: fetching it and extracting
# the few files we need costs ~45 s, so this runs in the background while apt installs the toolchain.
dl=$work/dl
mkdir -p "$dl"
chmod 0755 "$work"
chown _apt "$dl" 2>/dev/null || true
step "background: apt-get source --download-only otb=$otb_version, extract Modules/Wrappers/SWIG"
{
  (cd "$dl" && apt-get source -qq --download-only "otb=$otb_version")
  python3 "$here/otb-swig-sources.py" "$dl" "$src"
  step "background: OTB SWIG sources extracted"
} &
extract_pid=$!

# otb-bin and otb-qgis: Debian's OTBTargets.cmake refuses to load unless the executables it
# lists exist. libtinyxml-dev, libfftw3-dev: .so files named in the link interfaces of
# OTB/ITK that libotb-dev does not depend on.
step "apt-get install build dependencies"
apt_install libotb-dev otb-bin otb-qgis libtinyxml-dev libfftw3-dev \
  swig python3-dev python3-numpy cmake make g++ >/dev/null

wait "$extract_pid"
step "sources ready"

# Our top-level CMake project: find the installed OTB, then reuse upstream's
# Modules/Wrappers/SWIG/src(/python)/CMakeLists.txt unchanged, giving it the variables
# OTB's own build tree would have set.
cat > "$src/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.13...3.25)
project(OTBPythonWrapper CXX)
# Debian's OTB config names Boost::* targets in link interfaces without finding Boost itself
find_package(Boost REQUIRED COMPONENTS filesystem serialization)
find_package(OTB REQUIRED COMPONENTS OTBApplicationEngine)
include(${OTB_USE_FILE})
# A Python extension must not use OTB's -Wl,--no-undefined (libpython symbols come from the
# interpreter); --as-needed keeps only the libraries the wrapper uses as DT_NEEDED.
set(CMAKE_MODULE_LINKER_FLAGS "-Wl,--as-needed")
find_package(SWIG 4 REQUIRED)
include(UseSWIG)
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
set(OTB_WRAP_PYTHON ON)
# SWIG >= 4.1 no longer emits the flat Class_Method functions that otbApplication.i and pyotb use
set(CMAKE_SWIG_GLOBAL_FLAGS -flatstaticmethod)
set(NUMPY_FOUND ON)
set(NUMPY_INCLUDE_DIRS ${Python3_NumPy_INCLUDE_DIRS})
set(Python_INCLUDE_DIRS ${Python3_INCLUDE_DIRS})
set(PYTHON_EXECUTABLE ${Python3_EXECUTABLE})
set(PYTHON_LIBRARIES "")
set(OTB_INSTALL_PYTHON_DIR python)
set(OTB_INSTALL_DATA_DIR share/otb)
function(otb_module_target_label)
endfunction()
add_subdirectory(Modules/Wrappers/SWIG/src)
EOF

# -O1: the generated 2.7 MB wrapper is one translation unit, so -j does not help much; the
# target builds in ~30 s at -O1 against ~55 s at -O3 (Release) on 2 cores, and it is glue code
# (the work happens in OTB's libraries).
step "cmake configure"
cmake -S "$src" -B "$work/build" -Wno-dev -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" >/dev/null 2>"$work/cmake.err" \
  || { cat "$work/cmake.err" >&2; exit 1; }
step "building the otbApplication target"
cmake --build "$work/build" --target otbApplication -j "$jobs" >"$work/make.log" 2>&1 \
  || { tail -n 60 "$work/make.log" >&2; exit 1; }

step "installing into $out"
site=$out/usr/lib/python3/dist-packages
ext=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
apps=$(dpkg -L libotb-apps | grep '/otb/applications$')  # /usr/lib/<multiarch>/otb/applications
mkdir -p "$site" "$out/usr/lib/otb"
install -m 0644 "$work/build/python/otbApplication.py" "$site/otbApplication.py"
install -m 0644 "$work/build/python/_otbApplication.so" "$site/_otbApplication$ext"
strip --strip-unneeded "$site/_otbApplication$ext"
ln -sfn "../${apps#/usr/lib/}" "$out/usr/lib/otb/applications"
# OTB finds no application unless told where they are: default to Debian's directory when
# OTB_APPLICATION_PATH is unset (pyotb sets the same path through /usr/lib/otb/applications).
cat >> "$site/otbApplication.py" <<EOF

# Added by eo-vre images/base-geo/build.sh: Debian keeps OTB applications in $apps,
# which OTB does not search by itself.
import os as _os
if not _os.environ.get("OTB_APPLICATION_PATH"):
    Registry.AddApplicationPath("$apps")
del _os
EOF
# checked-hash: the .pyc stays valid whatever file times the image copy gives the .py
python3 -m compileall -q --invalidation-mode checked-hash "$site/otbApplication.py"

# Smoke test from $out (otb-smoke-test.py).
step "smoke test"
env -u OTB_APPLICATION_PATH LD_BIND_NOW=1 PYTHONPATH="$site" python3 "$here/otb-smoke-test.py"
step "done"
find "$out" -mindepth 1 \( -type f -o -type l \) -exec ls -ld {} +
