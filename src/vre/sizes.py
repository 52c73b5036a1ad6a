"""Sizes as people read them (decimal units, as `docker images` prints them)."""


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "kB") else f"{value:.2f} {unit}"
        value /= 1000
    return ""
