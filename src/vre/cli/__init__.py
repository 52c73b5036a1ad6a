"""The `vre` command line: one module per command group (images, lock, conda, release, publish, ci), options shared
by them (options), what they print (report), and the application that registers them (main)."""

from vre.cli.main import app

__all__ = ["app"]
