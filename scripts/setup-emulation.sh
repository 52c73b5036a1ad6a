#!/usr/bin/env bash
# Emulate other architectures on this machine, for `make images PLATFORM=linux/arm64` (vre build --platform): Debian's
# qemu-user-static registers its binfmt handlers with the F flag (the interpreter is loaded once, so it also serves
# containers and BuildKit), binfmt-support enables them, arch-test tells mmdebstrap (--arch) whether an arch runs.
# Not part of `make setup`: CI and amd64 builds need none of it. Safe to run again.
set -euo pipefail

need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v arch-test >/dev/null || need+=(arch-test)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup-emulation: apt-get install ${need[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# Machines without systemd (containers, some VMs) neither mount binfmt_misc nor enable the handlers at boot.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 2>/dev/null || true  # already enabled is fine; arch-test below decides
arch-test arm64 || { echo "setup-emulation: this machine cannot run arm64 binaries under qemu (see above)" >&2; exit 1; }
echo "setup-emulation: ready ($(arch-test | xargs))"
