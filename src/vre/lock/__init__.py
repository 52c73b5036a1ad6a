"""Locks: each flavor solves its layers' specs into locks (debian: uv, conda: rattler); vre.lock.flavor is the one
interface the rest of the factory calls."""
