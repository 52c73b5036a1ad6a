"""Release files of an image: manifest, SBOM, release notes between images or lock revisions, registry tags."""
