"""Run inside an image by vre.manifest (piped to the image's /usr/bin/python3): print, as JSON, what the image holds
that its /opt/vre/manifest.json does not say: every npm package installed anywhere (read from the package.json of
each node_modules/<name>/ and node_modules/@scope/<name>/ folder, so bundled and nested installs count too), each
Debian package's architecture, and the OS release. Standard library only: it runs on the image's own Python.
"""

import json
import os
import subprocess

SKIP = {"proc", "sys", "dev"}  # kernel file systems: no packages, and endless to walk


def npm() -> list[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for folder, dirs, _ in os.walk("/"):
        if folder == "/":
            dirs[:] = [d for d in dirs if d not in SKIP]
        if os.path.basename(folder) != "node_modules":
            continue
        for entry in dirs:
            scoped = entry.startswith("@")
            try:
                packages = os.listdir(os.path.join(folder, entry)) if scoped else [entry]
            except OSError:
                continue
            for package in packages:
                path = os.path.join(folder, entry, package, "package.json") if scoped else \
                    os.path.join(folder, entry, "package.json")
                try:
                    with open(path) as f:
                        meta = json.load(f)
                except (OSError, ValueError):
                    continue  # .bin, .cache and folders that are no package
                if isinstance(meta, dict) and meta.get("version"):
                    found.add((meta.get("name") or (f"{entry}/{package}" if scoped else entry), meta["version"]))
    return sorted(found)


def dpkg() -> list[list[str]]:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n"],
                         capture_output=True, text=True).stdout
    return [line.split("\t")[:3] for line in out.splitlines() if line.split("\t")[-1].startswith("ii")]


def os_release() -> dict[str, str]:
    try:
        with open("/etc/os-release") as f:
            pairs = (line.rstrip("\n").split("=", 1) for line in f if "=" in line)
            return {key: value.strip('"') for key, value in pairs}
    except OSError:
        return {}


if __name__ == "__main__":
    print(json.dumps({"npm": npm(), "dpkg": dpkg(), "os": os_release()}))
