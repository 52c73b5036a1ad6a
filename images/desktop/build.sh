#!/bin/sh
# desktop layer: the root-owned files of the desktop, and QGIS's OTB Processing provider.
#
# Runs as root in a throwaway builder stage FROM the parent image (base-geo, or deep-learning for `vre`); $1 is an
# output directory copied to / of the final image. It writes only:
#   $1/usr/local/share/vre-desktop/   xstartup, install-launchers, qgis-defaults, qgis-launcher, gdal-tools-shell,
#                                     launchers/*.desktop (run by the start hook and the desktop session),
#                                     vtk-wasm/ (empty: the start hook's VTK_WASM_DIR_OVERRIDE, so trame-vtklocal
#                                     downloads nothing)
#   $1/usr/local/etc/jupyter/jupyter_server_config.json   (ServerProxy.servers.qgis: the "QGIS" JupyterLab launcher;
#                                     Jupyter reads config.d folders only for enabling extensions, not for traits)
#   $1/usr/share/qgis/python/plugins/otbprovider/   (the OTB provider, see below)
#
# Why the OTB provider comes from here: QGIS dropped its OTB Processing provider in 3.36 (qgis/QGIS#55406); the
# standalone plugin lives on gitlab.orfeo-toolbox.org / plugins.qgis.org, which builds cannot reach. Debian
# bookworm's QGIS 3.22 shipped that provider (python3-qgis-common, GPL-2+), and Debian's otb-qgis package has the
# matching algorithm descriptors for Debian's OTB 8.1 (/usr/share/otb/description). We take the provider, unchanged,
# from bookworm's python3-qgis-common .deb (downloaded and verified by apt against the signed archive) and install
# it where QGIS 3.40 looks for core plugins, as QGIS <= 3.34 had it.
set -eu

out=${1:?usage: build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
step() { echo "[desktop/build.sh] $*"; }

share=$out/usr/local/share/vre-desktop
install -d "$share/launchers" "$share/vtk-wasm" "$out/usr/local/etc/jupyter"
install -m 0755 "$here/xstartup" "$here/install-launchers" "$here/qgis-defaults" "$here/qgis-launcher" \
    "$here/gdal-tools-shell" "$share/"
install -m 0644 "$here"/launchers/*.desktop "$share/launchers/"
install -m 0644 "$here/jupyter-server-proxy.json" "$out/usr/local/etc/jupyter/jupyter_server_config.json"

# The provider pairs with Debian's OTB and its otb-qgis descriptors: only for layers that install them (debian).
if ! grep -qx 'otb-qgis' "$here/apt.txt" 2>/dev/null; then
    step "no otb-qgis in this layer's apt.txt: no OTB Processing provider from Debian"
    find "$out" -mindepth 1 -type f | sort
    exit 0
fi

step "OTB Processing provider from bookworm's python3-qgis-common (QGIS 3.22)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
apt-get update -qq
# the bookworm (not backports) version: the last Debian QGIS that had the provider
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root python3-qgis-common/bookworm)
deb=$(ls "$work"/python3-qgis-common_*.deb)
version=$(dpkg-deb -f "$deb" Version)
case $version in 3.22.*) ;; *) echo "unexpected python3-qgis-common version $version in bookworm" >&2; exit 1 ;; esac
dpkg-deb -x "$deb" "$work/x"
plugins=$out/usr/share/qgis/python/plugins
install -d "$plugins"
cp -r "$work/x/usr/share/qgis/python/plugins/otbprovider" "$plugins/"
rm -rf "$plugins/otbprovider/tests"
cat > "$plugins/otbprovider/SOURCE.eo-vre" <<INFO
Debian bookworm python3-qgis-common $version, /usr/share/qgis/python/plugins/otbprovider (tests removed).
GPL-2+, see /usr/share/doc/python3-qgis-common/copyright in that package. Installed by eo-vre images/desktop/build.sh.
sha256 of the .deb: $(sha256sum "$deb" | cut -d' ' -f1)
INFO
python3 -m compileall -q --invalidation-mode checked-hash "$plugins/otbprovider"
rm -rf /var/lib/apt/lists/*
step "done"
find "$out" -mindepth 1 -type f | sort
