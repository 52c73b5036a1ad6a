"""What every image leaves out (README "Size budgets and waste"), and that leaving it out breaks nothing."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.base_geo, pytest.mark.lean]
DEBIAN = os.environ.get("VRE_FLAVOR") == "debian"


def test_documentation_is_left_out_but_copyright_files_stay():
    doc = Path("/usr/share/doc")
    files = [p for p in doc.rglob("*") if p.is_file() and not p.is_symlink()]
    assert files, "no copyright file at all under /usr/share/doc"
    extra = [str(p) for p in files if p.name != "copyright"]
    assert not extra, f"{len(extra)} documentation files installed, e.g. {extra[:5]}"
    manuals = [str(p) for p in Path("/usr/share/man").rglob("*") if p.is_file()]
    assert not manuals, f"{len(manuals)} manual pages installed, e.g. {manuals[:5]}"


def test_python_packages_test_suites_are_left_out():
    # Debian's own (dist-packages) stay: their postinst compiles every file of the package
    suites = [str(p) for p in Path("/srv").rglob("tests")
              if p.is_dir() and "site-packages" in p.parts and "vre_compat" not in p.parts
              and any(f.is_file() for f in p.rglob("*"))]
    assert not suites, f"{len(suites)} test suites of installed packages, e.g. {suites[:5]}"


@pytest.mark.skipif(not DEBIAN, reason="the debian flavor's apt.txt omits python3-pythran; conda has no such package")
def test_scipy_runs_its_pythran_built_code_without_the_pythran_compiler():
    status = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "python3-pythran"],
                            capture_output=True, text=True)
    assert not status.stdout.startswith("ii"), "python3-pythran is installed: its compiler chain came back"
    stand_in = subprocess.run(["dpkg-query", "-W", "-f", "${Provides}", "vre-omitted-python3-pythran"],
                              capture_output=True, text=True, check=True).stdout
    assert stand_in.startswith("python3-pythran (= ")
    import numpy as np
    from scipy.interpolate import RBFInterpolator  # its kernels are pythran-compiled (_rbfinterp_pythran)

    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    values = points.sum(axis=1)
    assert np.allclose(RBFInterpolator(points, values, kernel="linear")(points), values)


def test_what_the_layers_prune_txt_names_is_gone():
    import glob
    import sysconfig

    lists = sorted(Path("/opt/vre/layers").glob("*/prune.txt"))
    if not lists:
        pytest.skip("no layer of this image has a prune.txt")
    # the notebook environment's, and the separate venvs' beside it (debian gpu: TensorFlow's /srv/venv-tensorflow)
    sites = [sysconfig.get_paths()["purelib"], *glob.glob(f"{sys.prefix}-*/lib/python3*/site-packages")]
    patterns = [line.split("#", 1)[0].strip() for lst in lists for line in lst.read_text().splitlines()]
    left = [path for site in sites for pattern in filter(None, patterns) for path in glob.glob(f"{site}/{pattern}")]
    assert not left, f"prune.txt names paths the image still has: {left}"
