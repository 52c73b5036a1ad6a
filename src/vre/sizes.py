"""Sizes as people read them (decimal units, as `docker images` prints them)."""

import re

UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
SIZE = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>[kKMGT]?B)\s*$")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "kB") else f"{value:.2f} {unit}"
        value /= 1000
    return ""


def parse_size(text: str) -> int | None:
    """Bytes of a size written as people write it ("1.9 GB", "650 MB"); None when it is not one."""
    match = SIZE.match(text)
    return int(float(match["value"]) * UNITS[match["unit"]]) if match else None
