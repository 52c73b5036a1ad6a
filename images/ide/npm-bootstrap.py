"""Fetch npm packages named in a package-lock.json from the registry, check each against the lock's integrity hash,
and unpack it: npm-bootstrap.py LOCK REGISTRY WORKDIR NAME... (build.sh: the Node.js and npm that then run `npm ci`).
Runs on the image's python3 in the builder stage (standard library only)."""
import base64
import hashlib
import json
import sys
import tarfile
import urllib.request
lock, registry, work, *names = sys.argv[1:]
with open(lock) as f:
    packages = json.load(f)["packages"]
for name in names:
    entry = packages[f"node_modules/{name}"]
    algo, _, expected = entry["integrity"].partition("-")
    url = f"{registry.rstrip('/')}/{name}/-/{name}-{entry['version']}.tgz"
    data = urllib.request.urlopen(url, timeout=300).read()
    if base64.b64encode(hashlib.new(algo, data).digest()).decode() != expected:
        sys.exit(f"{url}: integrity mismatch (expected {entry['integrity']})")
    path = f"{work}/{name}.tgz"
    with open(path, "wb") as f:
        f.write(data)
    with tarfile.open(path) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(f"{work}/{name}", filter="data")
        else:
            tf.extractall(f"{work}/{name}")
    print(f"  {name} {entry['version']}: {len(data) >> 20} MiB, {algo} OK")
