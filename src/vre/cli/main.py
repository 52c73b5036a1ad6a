"""The `vre` application: every command group registered, each command's errors handled in one place."""

from __future__ import annotations

from typing import Any

import typer

from vre.cli import ci, conda, deploy, export, extend, images, lock, publish, release
from vre.cli.report import errors, handled
from vre.errors import INTERRUPTED, interrupted, watch_interrupts


class Vre(typer.Typer):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run as a program: SIGINT is recorded, so an interrupted command exits 130 even when Click saw the
        interrupt first (outside a command, where it reports "Aborted!" and exit 1)."""
        watch_interrupts()
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as e:
            if interrupted() and e.code != INTERRUPTED:
                errors.print("[red]interrupted[/red]", highlight=False)
                raise SystemExit(INTERRUPTED) from None
            raise


app = Vre(help="eo-vre: build, test and publish the Earth-observation VRE image matrix.", no_args_is_help=True,
          pretty_exceptions_enable=False)
app.command("list")(handled(images.list_))
app.command("build")(handled(images.build_cmd))
app.command("test", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    handled(images.test_cmd))
app.command("scan-ca")(handled(images.scan_ca))
ci_app = typer.Typer(help="Continuous integration: GitHub Actions workflows rendered from the matrix.",
                     no_args_is_help=True)
ci_app.command("render")(handled(ci.render))
app.add_typer(ci_app, name="ci")
app.command("lock")(handled(lock.lock))
recipes_app = typer.Typer(help="Recipes under recipes/: render and lint them, build them into a local channel.",
                          no_args_is_help=True)
recipes_app.command("check")(handled(conda.recipes_check))
recipes_app.command("build")(handled(conda.recipes_build))
recipes_app.command("publish")(handled(conda.recipes_publish))
app.add_typer(recipes_app, name="recipes")
app.command("env")(handled(conda.env))
app.command("publish")(handled(publish.publish))
app.command("tags")(handled(publish.tags))
app.command("diff")(handled(release.diff_cmd))
app.command("artifacts")(handled(release.artifacts_cmd))
app.command("export")(handled(export.export))
app.command("extend")(handled(extend.extend_cmd))
app.command("z2jh")(handled(deploy.z2jh_check))
