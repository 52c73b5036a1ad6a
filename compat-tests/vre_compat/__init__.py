"""eo-vre compat-test suite (run it with `vre-compat`)."""

__version__ = "1.0.0"
