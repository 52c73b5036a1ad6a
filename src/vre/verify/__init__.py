"""Verification of built images: the compat suite inside, browser checks outside, verdicts, the CA scan."""
