"""The `z2jh` command of `vre`: Zero to JupyterHub values rendered into pods and validated, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml

from vre.cli.report import console
from vre.deploy import z2jh


def z2jh_check(
    values: Annotated[Path, typer.Argument(help="Zero to JupyterHub values")] = Path("deploy/z2jh/values.yaml"),
    out: Annotated[Optional[Path], typer.Option(help="write each profile's pod manifest here (<profile>.yaml)")] = None,
) -> None:
    """Render the user pod of every profile with KubeSpawner, offline, and validate it against the Kubernetes API
    schema; exit 1 if one is invalid."""
    pods = z2jh.pods(values)
    for pod in pods:
        container = pod.manifest["spec"]["containers"][0]
        state = "[green]valid[/green]" if not pod.errors else f"[red]invalid:[/red] {'; '.join(pod.errors)}"
        console.print(f"{pod.profile}: {container['image']} {container['resources']} — {state} "
                      f"(Kubernetes {z2jh.K8S_VERSION})", highlight=False)
        if out:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{pod.profile}.yaml").write_text(yaml.safe_dump(pod.manifest, sort_keys=False))
    if any(pod.errors for pod in pods):
        raise typer.Exit(1)
