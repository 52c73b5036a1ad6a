"""Zero to JupyterHub values, checked without a cluster: each profile's user pod as KubeSpawner makes it, validated
against the Kubernetes API schema (kubernetes-validate ships the schemas).

The chart's hub turns `singleuser` values into KubeSpawner settings; `spawner_config` does the same for the keys
eo-vre's values use (any other key is an error here rather than silently left out of the check), then runs the
values' `hub.extraConfig` snippets as the chart's hub does. KubeSpawner needs a Kubernetes client configuration to be
constructed: a kubeconfig naming an unreachable server, never contacted (no call goes to a cluster when making a pod).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import yaml

from vre.errors import USAGE, VreError

# The singleuser keys rendered here (the chart knows more: a value using one of those must be added here first).
SINGLEUSER_KEYS = {"image", "cmd", "defaultUrl", "uid", "fsGid", "memory", "cpu", "storage", "extraEnv",
                   "nodeSelector", "networkPolicy", "profileList"}
# The Kubernetes API version the manifests are validated against (kubernetes-validate's schemas).
K8S_VERSION = "1.33.0"


class Z2jhError(VreError):
    """Values that cannot be rendered: names the file and the field."""

    exit_code = USAGE


@dataclass
class Pod:
    profile: str
    user: str
    manifest: dict[str, Any]
    errors: list[str]


def load_values(path: Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise Z2jhError(f"{path}: cannot read the values: {err}") from None
    if not isinstance(values, dict) or not isinstance(values.get("singleuser"), dict):
        raise Z2jhError(f"{path}: singleuser: expected a mapping (the chart's user server settings)")
    unknown = sorted(set(values["singleuser"]) - SINGLEUSER_KEYS)
    if unknown:
        raise Z2jhError(f"{path}: singleuser.{unknown[0]}: not rendered offline by vre (known: "
                        f"{', '.join(sorted(SINGLEUSER_KEYS))})")
    return values


def spawner_config(values: dict[str, Any], path: Path) -> Any:
    """KubeSpawner settings from the values, as the chart's hub sets them."""
    from traitlets.config import Config

    su = values["singleuser"]
    c = Config()
    k = c.KubeSpawner
    image = su.get("image", {})
    if not image.get("name"):
        raise Z2jhError(f"{path}: singleuser.image.name: missing (the default image)")
    k.image = f"{image['name']}:{image.get('tag', 'latest')}"
    k.image_pull_policy = image.get("pullPolicy", "IfNotPresent")
    if "cmd" in su:
        k.cmd = su["cmd"] if isinstance(su["cmd"], list) else [su["cmd"]]
    if "defaultUrl" in su:
        k.default_url = su["defaultUrl"]
    for key, trait in (("uid", "uid"), ("fsGid", "fs_gid"), ("nodeSelector", "node_selector"),
                       ("extraEnv", "environment")):
        if key in su:
            setattr(k, trait, su[key])
    for key in ("memory", "cpu"):
        for bound in ("limit", "guarantee"):
            if su.get(key, {}).get(bound) is not None:
                setattr(k, f"{'mem' if key == 'memory' else 'cpu'}_{bound}", su[key][bound])
    storage = su.get("storage", {})
    volumes, mounts = [], []
    if storage.get("type", "dynamic") == "dynamic":
        k.pvc_name_template = "claim-{username}{servername}"
        k.storage_pvc_ensure = True
        k.storage_capacity = storage.get("capacity", "10Gi")
        k.storage_access_modes = ["ReadWriteOnce"]
        volumes.append({"name": "volume-{username}{servername}", "persistentVolumeClaim": {"claimName": "{pvc_name}"}})
        mounts.append({"name": "volume-{username}{servername}",
                       "mountPath": storage.get("homeMountPath", "/home/jovyan")})
    elif storage.get("type") != "none":
        raise Z2jhError(f"{path}: singleuser.storage.type: expected dynamic or none, got {storage.get('type')!r}")
    k.volumes = volumes + storage.get("extraVolumes", [])
    k.volume_mounts = mounts + storage.get("extraVolumeMounts", [])
    k.extra_labels = {"hub.jupyter.org/network-access-hub": "true"}  # the chart's: the pod may reach the hub
    if su.get("profileList"):
        k.profile_list = su["profileList"]
    for name, snippet in (values.get("hub", {}).get("extraConfig") or {}).items():
        try:
            exec(compile(snippet, f"{path}: hub.extraConfig.{name}", "exec"), {"c": c})  # as the chart's hub does
        except Exception as err:
            raise Z2jhError(f"{path}: hub.extraConfig.{name}: {type(err).__name__}: {err}") from None
    return c


@contextlib.contextmanager
def offline_kubeconfig() -> Iterator[None]:
    """A kubeconfig for KubeSpawner's client set-up, naming a server nobody listens on; $KUBECONFIG restored."""
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "offline",
              "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:9"}}],
              "users": [{"name": "offline", "user": {"token": "offline"}}],
              "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}]}
    before = os.environ.get("KUBECONFIG")
    with tempfile.TemporaryDirectory(prefix="vre-z2jh-") as tmp:
        path = Path(tmp) / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        os.environ["KUBECONFIG"] = str(path)
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = before


async def _pod(config: Any, profile: str, user: str, groups: list[str]) -> dict[str, Any]:
    from kubernetes_asyncio.client import ApiClient
    from kubespawner import KubeSpawner

    hub = SimpleNamespace(public_host="", url="http://hub:8081/hub/", base_url="/hub/",
                          api_url="http://hub:8081/hub/api")
    owner = SimpleNamespace(name=user, id=1, url=f"/user/{user}/", groups=[SimpleNamespace(name=g) for g in groups])
    spawner = KubeSpawner(config=config, user=owner, hub=hub, _mock=True)
    spawner.user_options = {"profile": profile}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    if spawner.modify_pod_hook:
        pod = spawner.modify_pod_hook(spawner, pod)
    async with ApiClient() as client:
        manifest: dict[str, Any] = client.sanitize_for_serialization(pod)
    return manifest


def pods(values_path: Path, user: str = "ada", groups: tuple[str, ...] = ("team-01",)) -> list[Pod]:
    """The user pod of every profile of the values, each with its schema errors (none: valid)."""
    import kubernetes_validate

    values = load_values(values_path)
    config = spawner_config(values, values_path)
    slugs = [p.get("slug") for p in values["singleuser"].get("profileList") or []] or [""]
    out: list[Pod] = []
    with offline_kubeconfig():
        for slug in slugs:
            manifest = asyncio.run(_pod(config, slug, user, list(groups)))
            manifest.setdefault("apiVersion", "v1")
            manifest.setdefault("kind", "Pod")
            errors: list[str] = []
            try:
                kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as err:
                errors = [f"{'.'.join(str(p) for p in err.path)}: {err.message}"]
            out.append(Pod(slug or "default", user, manifest, errors))
    return out
