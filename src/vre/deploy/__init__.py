"""Deployments of the images for many users: Zero to JupyterHub values checked offline (z2jh). The Docker-host hub's
configuration is deploy/jupyterhub-docker/ (a JupyterHub configuration file, not a module of the factory)."""
