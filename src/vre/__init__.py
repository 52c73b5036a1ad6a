"""eo-vre: the image factory of an Earth-observation Virtual Research Environment."""
