"""What an image weighs: the size of each step a build added, and size budgets (images/matrix.yaml
`images.<name>.budget`): an image over its budget is not tagged, and the error lists what weighs most in it, measured
in the image itself: its largest Debian packages (dpkg's Installed-Size), Python distributions (the files their
metadata lists) and directories (du)."""

from __future__ import annotations

import re

from vre import engine
from vre.sizes import human_size

TOP = 8
# Runs in the image as root, without network: one "<bytes>\t<kind>\t<name>" line per contributor.
PROBE = f"""
dpkg-query -W -f '${{Installed-Size}}\\t${{Package}}\\n' 2>/dev/null | sort -rn | head -n {TOP} \\
  | awk -F'\\t' '{{ printf "%d\\tapt\\t%s\\n", $1 * 1024, $2 }}'
"${{NB_PYTHON_PREFIX:-/usr}}/bin/python3" - <<'PY' 2>/dev/null
import importlib.metadata as md, os
sizes = {{}}
for dist in md.distributions():
    files = [dist.locate_file(f) for f in dist.files or ()]
    sizes[dist.metadata["Name"]] = sum(os.path.getsize(f) for f in files if os.path.isfile(f))
for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:{TOP}]:
    print(f"{{size}}\\tpip\\t{{name}}")
PY
du -x -B1 -d 3 / 2>/dev/null | sort -rn | sed -n '2,{TOP + 1}p' | awk '{{ printf "%d\\tpath\\t%s\\n", $1, $2 }}'
"""
KINDS = (("apt", "Debian packages"), ("pip", "Python distributions"), ("path", "directories"))


def contributors(image: str) -> dict[str, list[tuple[int, str]]]:
    """kind (apt, pip, path) -> the image's largest (bytes, name), largest first."""
    out = engine.docker("run", "--rm", "--user", "0", "--network", "none", "--entrypoint", "bash", image, "-c",
                        PROBE).stdout.decode(errors="replace")
    found: dict[str, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        size, kind, name = line.split("\t", 2)
        if int(size):  # a distribution Debian installed lists no files of its own
            found.setdefault(kind, []).append((int(size), name))
    return found


def over_budget(image: str, size: int, budget: int, field: str) -> str:
    """Why an image over its budget is refused, with its largest contributors."""
    lines = [f"{human_size(size)} is over the budget of {human_size(budget)} ({field} in images/matrix.yaml); "
             "nothing tagged. Largest in the image:"]
    found = contributors(image)
    for kind, title in KINDS:
        if found.get(kind):
            lines += [f"  {title}:", *(f"    {human_size(n):>9}  {name}" for n, name in found[kind])]
    return "\n".join(lines)


def step_sizes(image_id: str, base: str) -> list[tuple[int, str]]:
    """(bytes, instruction) of every step with content that `image_id` has above `base`, oldest first: what users
    pull for it."""
    def history(ref: str) -> list[tuple[int, str]]:
        out = engine.docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}",
                            ref).stdout.decode(errors="replace")
        return [(int(size), what) for size, what in (line.split("\t", 1) for line in out.splitlines())]
    own = history(image_id)
    return [step for step in reversed(own[: len(own) - len(history(base))]) if step[0]]


def describe_step(instruction: str) -> str:
    """A step as a line shows it (`RUN vre-install heavy ${VRE_LAYERS}`): without the build args and shell that
    BuildKit records for a RUN, its mounts, or its `# buildkit` mark."""
    text = instruction.removesuffix(" # buildkit")
    text = re.sub(r"^RUN \|\d+ .*?/bin/sh -c ", "RUN ", text)
    text = re.sub(r"--mount=\S+\s*", "", text.replace("/bin/sh -c ", ""))
    return " ".join(text.split())[:100]
