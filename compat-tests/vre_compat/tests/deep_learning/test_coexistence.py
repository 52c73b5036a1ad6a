"""GDAL, OTB, PyTorch, TensorFlow (and QGIS when the image has it) in one process: every import order, one round
trip through all of them, one copy of each native library, one GDAL/PROJ installation, also inside Jupyter kernels.

Each import order runs in a fresh process (probe.py): what one order loads first decides which library the others
get, so a conflict shows in some orders only.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from vre_compat.tests.deep_learning import stack

pytestmark = [pytest.mark.deep_learning, pytest.mark.coexistence]


@pytest.fixture(scope="module")
def reference_openmp():
    """{environment name: the OpenMP runtime the geospatial stack maps by itself (OTB alone; GDAL where the image
    has no OTB), or None}."""
    return {env.name: stack.probe(env, "imports", "otb" if "otb" in env.components else "gdal")["libraries"]
            .get("openmp", [None])[0] for env in stack.environments()}


@pytest.fixture(scope="module")
def import_reports(request):
    """The probe of every selected import order, a few at a time: each is a fresh process importing the whole stack
    (seconds of CPU each, 120 orders with QGIS), and the orders are independent. {(env name, order): report}."""
    selected = [item.callspec.params for item in request.session.items
                if getattr(item, "originalname", "") == "test_import_order"]

    def one(env, order):
        try:
            return stack.probe(env, "imports", ",".join(order))
        except BaseException as err:  # noqa: B036 (pytest.fail in a worker: re-raised by that order's test)
            return err

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {(p["env"].name, p["order"]): pool.submit(one, p["env"], p["order"]) for p in selected}
    return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("env,order", stack.import_orders())
def test_import_order(env, order, reference_openmp, import_reports):
    report = import_reports[(env.name, order)]
    if isinstance(report, BaseException):
        raise report
    where = f"{env.name} environment ({env.python}), import order {' -> '.join(order)}"
    duplicates = stack.duplicate_libraries(report["libraries"])
    assert not duplicates, f"{where}: " + "; ".join(duplicates)
    openmp = report["libraries"].get("openmp", [])
    reference = reference_openmp[env.name]
    # One runtime per process is not enough: the one every library gets must not depend on who came first.
    assert not reference or openmp in ([], [reference]), (
        f"{where}: the OpenMP runtime depends on import order: this process maps {openmp[0]}, "
        f"OTB alone maps {reference}")
    problems = stack.data_conflicts(report)
    assert not problems, f"{where}: " + "; ".join(problems)


def roundtrip_args(env, tmp_path):
    qgis = ["qgis"] if stack.has_qgis() and env.name == "notebook" else []
    no_otb = [] if "otb" in env.components else ["no-otb"]
    return ["roundtrip", str(tmp_path / "roundtrip"), ",".join(env.frameworks), *qgis, *no_otb]


ROUNDTRIPS = [pytest.param((env, where), id=f"{env.name}-{where}")
              for env in stack.environments() for where in ("process", "kernel")]


@pytest.fixture(scope="module", params=ROUNDTRIPS)
def roundtrip(request, tmp_path_factory):
    """GDAL writes a georeferenced raster, OTB's BandMath labels it (numpy where the image has no OTB: arm64),
    GDAL reads it back, a small CNN learns the
    labels on 16x16 tiles (PyTorch and TensorFlow interleaved when they share the environment), GDAL writes the
    prediction with the source's georeferencing, QGIS (when present) opens it and runs a processing algorithm.
    One process (or one Jupyter kernel) does it all; the probe asserts each step and reports what it mapped."""
    env, where = request.param
    tmp_path = tmp_path_factory.mktemp(f"roundtrip-{env.name}-{where}")
    args = roundtrip_args(env, tmp_path)
    if where == "process":
        report = stack.probe(env, *args)
    else:
        report = stack.probe_in_kernel(env.kernel, *args, workdir=tmp_path)
    return env, where, report


def test_roundtrip_trains_and_keeps_georeferencing(roundtrip):
    env, where, report = roundtrip
    assert set(report["losses"]) == set(env.frameworks), f"trained {sorted(report['losses'])}"
    assert set(report["outputs"]) == set(env.frameworks)


def test_roundtrip_one_copy_of_each_library(roundtrip):
    env, where, report = roundtrip
    duplicates = stack.duplicate_libraries(report["libraries"])
    assert not duplicates, f"round trip in the {env.name} environment ({where}): " + "; ".join(duplicates)
    for family in ("libstdc++", "libgdal", "libproj"):
        assert len(report["libraries"].get(family, [])) == 1, \
            f"{family} not mapped by the round trip: {report['libraries']}"


def test_roundtrip_one_gdal_and_proj_installation(roundtrip):
    env, where, report = roundtrip
    problems = stack.data_conflicts(report)
    assert not problems, f"round trip in the {env.name} environment ({where}): " + "; ".join(problems)


def test_roundtrip_frameworks_side_by_side(roundtrip):
    env, where, report = roundtrip
    if set(env.frameworks) != {"torch", "tensorflow"}:
        pytest.skip(f"TensorFlow has its own environment in this image ({env.name} holds {', '.join(env.frameworks)})")
    for name, (first, last) in report["losses"].items():
        assert last < first, f"{name} trained beside the other framework but its loss went {first} -> {last}"


def test_roundtrip_qgis(roundtrip):
    env, where, report = roundtrip
    if not stack.has_qgis():
        pytest.skip(stack.QGIS_ABSENT)
    if env.name != "notebook":
        pytest.skip("QGIS is checked in the notebook environment")
    assert report["qgis"]["crs"] == "EPSG:32631", report["qgis"]


def test_gdal_and_proj_data_same_everywhere(tmp_path):
    """GDAL_DATA/PROJ_DATA resolve to one installation in this process, every environment and every kernel."""
    from vre_compat.tests.deep_learning import probe

    seen = {"this pytest process": {"data": probe.data_dirs(), "libraries": probe.mapped_libraries()}}
    for env in stack.environments():
        seen[f"{env.name} process"] = stack.probe(env, "imports", "gdal")
        seen[f"kernel {env.kernel}"] = stack.probe_in_kernel(env.kernel, "imports", "gdal", workdir=tmp_path)
    problems = [f"{where}: {problem}" for where, report in seen.items() for problem in stack.data_conflicts(report)]
    assert not problems, "; ".join(problems)
    for key in ("gdal_data", "proj_data"):
        values = {where: report["data"][key] for where, report in seen.items()}
        assert len(set(values.values())) == 1, f"{key} differs: {values}"



@pytest.mark.parametrize("env", [pytest.param(env, id=env.name) for env in stack.environments()])
def test_scikit_learn_openmp_workloads_after_the_frameworks(env):
    """scikit-learn's OpenMP workloads give the right answers on the one runtime the process maps, after the
    environment's frameworks loaded it (on arm64 LLVM's libomp, standing in for GNU's libgomp; see
    images/deep-learning/build.sh)."""
    result = stack.probe(env, "sklearn", ",".join(env.frameworks))
    where = f"{env.name} environment ({env.python}) after importing {', '.join(env.frameworks) or 'nothing'}"
    if "missing" in result:
        pytest.skip(f"no scikit-learn in the {env.name} environment: {result['missing']}")
    openmp = result["libraries"].get("openmp", [])
    assert len(openmp) == 1, f"{where}: OpenMP runtimes loaded: {openmp} (one expected)"
    assert result["rand"] > 0.99, f"{where}: k-means found other clusters (adjusted Rand index {result['rand']})"
    assert result["accuracy"] > 0.85, f"{where}: gradient boosting accuracy {result['accuracy']}"
