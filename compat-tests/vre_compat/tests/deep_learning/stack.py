"""What the deep-learning tests need to know about the image: its Python environments, what each must hold, and
how to run the coexistence probe (probe.py) in a fresh process or in a Jupyter kernel.

The layout is read from the image, flavor-independently:
- the notebook environment (this process's sys.executable, kernel "python3") holds GDAL, OTB and PyTorch (OTB
  everywhere but on arm64, for which Debian builds none);
- TensorFlow is wherever the Jupyter kernel named "tensorflow" runs: the notebook environment itself when the
  two frameworks share it, else an environment of its own (which must also hold GDAL and OTB);
- QGIS is expected exactly when the image has the desktop layer.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vre_compat.helpers import NO_OTB, clip, layers_file, otb_expected, read_layers, run

PROBE = Path(__file__).resolve().parent / "probe.py"
REPORT_PREFIX = "vre-probe-report: "  # as in probe.py (which must stay importable without vre_compat)
TF_KERNEL = "tensorflow"
QGIS_LAYER = "desktop"
QGIS_ABSENT = "QGIS is in the desktop layer"


@dataclass(frozen=True)
class Env:
    name: str  # "notebook" or "tensorflow"
    python: str
    kernel: str  # the Jupyter kernel that runs this environment
    components: tuple[str, ...]  # what must import (and work) together in one process
    frameworks: tuple[str, ...] = field(default=())  # the deep-learning frameworks among them
    env: tuple[tuple[str, str], ...] = ()  # variables its kernel spec sets (a process of it gets them too)

    def process_env(self) -> dict:
        return {**os.environ, **dict(self.env)}


def installed_layers() -> list[str]:
    try:
        return read_layers(layers_file())
    except OSError:
        return []


def has_qgis() -> bool:
    return QGIS_LAYER in installed_layers()


def kernel_spec(name: str):
    """A registered Jupyter kernel spec, or None."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None


def kernel_python(name: str) -> str | None:
    """The interpreter of a registered Jupyter kernel (argv[0] of its spec), or None if there is no such kernel."""
    spec = kernel_spec(name)
    return (shutil.which(spec.argv[0]) or spec.argv[0]) if spec else None  # a spec may name "python" (PATH)


def same_python(a: str, b: str) -> bool:
    """Same environment: same prefix (bin/python and bin/python3 are one interpreter)."""
    return Path(a).absolute().parent.parent == Path(b).absolute().parent.parent


@functools.cache
def environments() -> tuple[Env, ...]:
    """The image's environments and what each must hold (computed at collection: no failure here)."""
    spec = kernel_spec(TF_KERNEL) if _jupyter_client() else None
    tf_python = (shutil.which(spec.argv[0]) or spec.argv[0]) if spec else None
    otb = ("otb",) if otb_expected() else ()
    if tf_python is None or same_python(tf_python, sys.executable):
        # no "tensorflow" kernel is itself a failure (test_tensorflow_kernel_registered); expect TF here meanwhile
        return (Env("notebook", sys.executable, "python3", ("gdal", "torch", "tensorflow", *otb),
                    ("torch", "tensorflow")),)
    return (Env("notebook", sys.executable, "python3", ("gdal", "torch", *otb), ("torch",)),
            Env("tensorflow", tf_python, TF_KERNEL, ("gdal", "tensorflow", *otb), ("tensorflow",),
                tuple(sorted((spec.env or {}).items()))))


def _jupyter_client() -> bool:
    try:
        import jupyter_client  # noqa: F401
    except ImportError:
        return False
    return True


def import_orders() -> list:
    """pytest params: every order of each environment's components, in a fresh process each. QGIS joins the
    notebook environment's orders in images with the desktop layer; elsewhere one skipped param stands for them, and
    so for OTB's on arm64."""
    params = []
    for env in environments():
        if "otb" not in env.components:
            params.append(pytest.param(env, env.components + ("otb",), id=f"{env.name}:orders-with-otb",
                                       marks=pytest.mark.skip(reason=NO_OTB)))
        components = env.components + (("qgis",) if env.name == "notebook" and has_qgis() else ())
        for order in itertools.permutations(components):
            params.append(pytest.param(env, order, id=f"{env.name}:{'-'.join(order)}"))
        if env.name == "notebook" and not has_qgis():
            params.append(pytest.param(env, components + ("qgis",), id=f"{env.name}:orders-with-qgis",
                                       marks=pytest.mark.skip(reason=QGIS_ABSENT)))
    return params


def parse(stdout: str, what: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith(REPORT_PREFIX)]
    if not lines:
        pytest.fail(f"{what}: the probe printed no report\n{clip(stdout)}")
    return json.loads(lines[-1][len(REPORT_PREFIX):])


def probe(env: Env, *args: str, timeout: float = 600) -> dict:
    """Run probe.py in a fresh process of the environment; fail with its output when it breaks."""
    python = env.python
    proc = run([python, str(PROBE), *args], timeout=timeout, env=env.process_env())
    what = f"{python} probe.py {' '.join(args)}"
    if proc.returncode != 0:
        pytest.fail(f"{what} exited {proc.returncode}\n--- stderr ---\n{clip(proc.stderr, 10, 30)}"
                    f"\n--- stdout ---\n{clip(proc.stdout, 5, 10)}")
    return parse(proc.stdout, what)


def run_json(env: Env, code: str, timeout: float = 300) -> dict:
    """Run `code` (which prints one JSON line last) in a fresh process of the environment."""
    proc = run([env.python, "-c", code], timeout=timeout, env=env.process_env())
    if proc.returncode != 0:
        pytest.fail(f"{env.python} -c ... exited {proc.returncode}\n--- stderr ---\n{clip(proc.stderr, 10, 30)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def kernel_stdout(kernel: str, code: str, workdir: Path, timeout: float = 600) -> str:
    """stdout of `code` run in a fresh Jupyter kernel (as JupyterLab starts it), through nbclient."""
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                                resources={"metadata": {"path": str(workdir)}}).execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"kernel {kernel!r} failed:\n{clip(str(err), 10, 30)}")
    except Exception as err:  # noqa: BLE001 - no such kernel, a kernel that dies: the test fails, naming it
        pytest.fail(f"kernel {kernel!r} did not run: {type(err).__name__}: {err}")
    return "".join(out.get("text", "") for out in nb.cells[0].get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")


def probe_in_kernel(kernel: str, *args: str, workdir: Path, timeout: float = 600) -> dict:
    """Run probe.py inside a fresh Jupyter kernel."""
    code = (f"import runpy, sys\nsys.argv = {[str(PROBE), *args]!r}\n"
            f"runpy.run_path({str(PROBE)!r}, run_name='__main__')\n")
    return parse(kernel_stdout(kernel, code, workdir, timeout), f"kernel {kernel!r}: probe.py {' '.join(args)}")


# --- checks shared by the tests (each names the conflict it finds) ----------------------------------------------

def duplicate_libraries(libraries: dict) -> list[str]:
    """One line per library mapped from more than one file."""
    return [f"{len(files)} copies of {family} mapped: {', '.join(files)}"
            for family, files in sorted(libraries.items()) if len(files) > 1]


def installation_prefix(path: str) -> str:
    """/usr for /usr/lib/x86_64-linux-gnu/libgdal.so.32 and /usr/share/gdal; $PREFIX for $PREFIX/lib/... ."""
    p = Path(path)
    for parent in p.parents:
        if parent.name in ("lib", "lib64", "share"):
            return str(parent.parent)
    return str(p.parent)


def data_conflicts(report: dict) -> list[str]:
    """GDAL and PROJ data must each come from one installation: the one whose library this process maps."""
    data, libraries = report.get("data") or {}, report.get("libraries", {})
    problems = []
    for name, key, lib in (("GDAL", "gdal_data", "libgdal"), ("PROJ", "proj_data", "libproj")):
        found = data.get(key)
        if not found:
            problems.append(f"{name} finds no data directory (environment: {data.get('env')})")
            continue
        for library in libraries.get(lib, []):
            if installation_prefix(found) != installation_prefix(library):
                problems.append(f"{name} data from {found} but {lib} is {library}: two installations")
    if data.get("pyproj_data") and data.get("proj_data") and data["pyproj_data"] != data["proj_data"]:
        problems.append(f"pyproj uses PROJ data {data['pyproj_data']}, GDAL's PROJ uses {data['proj_data']}")
    for var, key in (("GDAL_DATA", "gdal_data"), ("PROJ_DATA", "proj_data"), ("PROJ_LIB", "proj_data")):
        value = (data.get("env") or {}).get(var)
        if value and data.get(key) and os.path.realpath(value) != data[key]:
            problems.append(f"{var}={value} but {key.split('_')[0].upper()} uses {data[key]}")
    return problems
