"""Dask's LocalCluster serves its scheduler's dashboard on every interface (dashboard_address=":8787", a default that
no dask config key changes): on a hub's network any other user's server could reach it. The image's default becomes
loopback; the dashboard is reached through jupyter-server-proxy (/proxy/127.0.0.1:8787/status, the link the start
hook sets). An explicit dashboard_address still wins. Run by base-geo's postBuild; the compat suite's test_dask.py
checks what a plain LocalCluster() listens on."""

import importlib.util
import pathlib
import py_compile

# The file, without importing distributed (its import starts nothing, but is slow).
path = pathlib.Path(importlib.util.find_spec("distributed").submodule_search_locations[0]) / "deploy" / "local.py"
text = path.read_text()
old, new = 'dashboard_address=":8787"', 'dashboard_address="127.0.0.1:8787"'
if text.count(old) != 1:
    raise SystemExit(f"{path}: expected LocalCluster's default {old} once (did distributed change?)")
path.write_text(text.replace(old, new))
py_compile.compile(str(path), doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
print(f"[base-geo postBuild] {path}: LocalCluster's dashboard defaults to {new.split('=')[1]}")
