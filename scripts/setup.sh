#!/usr/bin/env bash
# Set up a fresh Debian machine for eo-vre: the Docker engine (started if none runs), mmdebstrap for base images,
# Chromium for browser tests, and the vre package with its test dependencies. Safe to run again.
set -euo pipefail

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
# A real OCI registry on loopback for the publish tests (push, pull by tag and digest).
command -v docker-registry >/dev/null || need+=(docker-registry)
# Browser checks (src/vre/verify/browser): playwright-core from npm drives chromium; Debian's nodejs 18 is enough (>= 18).
{ command -v node >/dev/null && command -v npm >/dev/null; } || need+=(nodejs npm)
# The apt lock's tests build a local apt repository (dpkg-scanpackages).
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
# The conda tests' fixture python wraps Debian's python3, the one the images' foundation has.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import venv, wheel' 2>/dev/null || need+=(python3-venv python3-wheel)
# HPC runtimes and a one-machine Slurm (tests/hpc, `vre export`): Charliecloud's ch-run (SquashFS through FUSE),
# rootless Podman (newuidmap, slirp4netns), mksquashfs, Slurm with munge.
command -v ch-run >/dev/null || need+=(charliecloud-runtime squashfuse fuse3)
command -v podman >/dev/null || need+=(podman uidmap slirp4netns fuse-overlayfs catatonit)
command -v mksquashfs >/dev/null || need+=(squashfs-tools)
{ command -v slurmctld >/dev/null && command -v munged >/dev/null; } || need+=(slurm-wlm munge)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: apt-get install ${need[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# Debian's client has BuildKit built in; a newer client on PATH may lack buildx.
docker=/usr/bin/docker
if ! "$docker" version >/dev/null 2>&1; then
    echo "setup: starting dockerd"
    nohup dockerd >/var/log/vre-dockerd.log 2>&1 &
    for _ in $(seq 60); do
        "$docker" version >/dev/null 2>&1 && break
        sleep 1
    done
    "$docker" version >/dev/null || { echo "setup: dockerd did not start, see /var/log/vre-dockerd.log" >&2; exit 1; }
fi

# The one-machine Slurm's configuration and state folders (the tests start munged, slurmctld and slurmd).
install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
install -m 0644 deploy/slurm/slurm.conf /etc/slurm/slurm.conf
# Unprivileged FUSE (ch-run's SquashFS mounts) and TUN (rootless Podman's slirp4netns): 0666 is what Debian's udev
# rules set; machines without udev (VMs started without it, containers) leave them 0600.
for dev in /dev/fuse /dev/net/tun; do
    [ -c "$dev" ] && chmod 0666 "$dev"
done

python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
echo "setup: ready (docker $("$docker" version --format '{{.Server.Version}}'), $(mmdebstrap --version))"
