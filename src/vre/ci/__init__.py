"""CI: the GitHub Actions workflows, rendered from the matrix."""
