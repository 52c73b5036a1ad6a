"""Locks: each flavor solves its layers' specs into locks (debian: uv, conda: rattler); `flavor` is the one interface."""
