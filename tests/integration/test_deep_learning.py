"""The deep-learning layer, debian flavor, both variants: locks, builds through the factory, layers shared with
base-geo, sizes, the compat suite inside both images, and deliberately broken images failing the right test."""

from __future__ import annotations

import hashlib
import re

import pytest
from packaging.markers import Marker
from typer.testing import CliRunner
from tests.testkit import ALL_IMAGES, REAL, ROOT, build_or_fail, needs_all_images

from vre import cli, engine
from vre.lock import debian as lock_pip
from vre.build import content_ref
from vre.verify.compat import run_compat
from vre.workspace import Workspace

pytestmark = pytest.mark.skipif("debian" not in REAL["images"]["deep-learning"]["flavors"],
                                reason="images/matrix.yaml builds deep-learning only for "
                                       f"{REAL['images']['deep-learning']['flavors']}")
VARIANTS = ("cpu", "gpu")
KEYS = {variant: f"deep-learning/debian/{variant}" for variant in VARIANTS}
GB = 1e9
# Size budgets of what the layer adds to base-geo (measured: cpu 2.5 GB, gpu 10.0 GB; see the README).
BUDGET = {"cpu": 3.0 * GB, "gpu": 12.5 * GB}


# --- without building ---------------------------------------------------------------------------------------------

def test_debian_targets(real_matrix):
    for variant, key in KEYS.items():
        target = real_matrix.targets[key]
        assert target.parent == "base-geo/debian" and target.variant == variant
        assert [layer.name for layer in target.layers] == ["deep-learning"]
    assert "conda" in real_matrix.spec.images["deep-learning"].flavors, "the conda flavor must stay in the matrix"


@pytest.mark.parametrize("variant", VARIANTS)
def test_locks_fresh(real_matrix, variant):
    assert lock_pip.stale(real_matrix, real_matrix.targets[KEYS[variant]]) == []


def test_cpu_lock_pins_the_wheelhouse_torch(real_matrix):
    """The CPU torch comes from the variant's wheelhouse, locked by the sha256 of that very file."""
    wheels = real_matrix.wheels(real_matrix.targets[KEYS["cpu"]])
    assert wheels and wheels.is_dir(), "variants.cpu.wheels (images/matrix.yaml) names no wheel folder"
    lock = (ROOT / "environments" / "debian" / "deep-learning-cpu" / "requirements.txt").read_text()
    # (aarch64 has its own pin, torch 2.10.0, behind a platform marker)
    match = re.search(r"^torch==(\S+\+cpu)(?: ;[^\\\n]*)? \\\n((?:\s+--hash=sha256:\w+(?: \\)?\n)+)", lock, re.M)
    assert match, "the cpu lock does not pin a +cpu torch"
    locked = set(re.findall(r"sha256:(\w+)", match[2]))
    files = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in wheels.glob(f"torch-{match[1]}-*.whl")}
    assert locked & files.keys(), f"torch {match[1]} hashes {locked} match no wheel of {wheels}: {files}"


def installed_on(lock_text: str, machine: str) -> set[str]:
    """The names a hash-locked requirements.txt installs on a Linux machine (platform_machine), Python 3.11."""
    environment = {"platform_machine": machine, "sys_platform": "linux", "python_version": "3.11",
                   "python_full_version": "3.11.2", "platform_system": "Linux", "implementation_name": "cpython"}
    return {pin["name"] for pin in lock_pip.PIN.finditer(lock_text)
            if not pin["marker"] or Marker(pin["marker"].strip().lstrip(";")).evaluate(environment)}


def test_cpu_tensorflow_shares_the_main_environment_on_both_platforms():
    """torch and TensorFlow in one environment on amd64 (tensorflow-cpu) and on arm64 (PyPI's aarch64 tensorflow, a
    CPU build: tensorflow-cpu has none), as the coexistence suite proves on both; the cpu variant has no venv."""
    spec = ROOT / "environments" / "debian" / "deep-learning-cpu"
    main = (spec / "requirements.txt").read_text()
    assert {"torch", "tensorflow-cpu", "keras"} <= installed_on(main, "x86_64")
    assert "tensorflow" not in installed_on(main, "x86_64")
    assert {"torch", "tensorflow", "keras"} <= installed_on(main, "aarch64")
    assert "tensorflow-cpu" not in installed_on(main, "aarch64")
    assert not (spec / "envs").exists(), "the cpu variant's TensorFlow has an environment of its own again"


def test_gpu_lock_has_one_cuda_stack():
    """TensorFlow's venv installs none of the CUDA wheels of torch's environment: its lock names them as shared
    (`# vre-shared:`), at exactly the main lock's versions, and pins no other nvidia-* wheel than what torch lacks."""
    spec = ROOT / "environments" / "debian" / "deep-learning-gpu"
    main_text = (spec / "requirements.txt").read_text()
    side_text = (spec / "envs" / "tensorflow" / "requirements.txt").read_text()
    main, side, shared = lock_pip.pins(main_text), lock_pip.pins(side_text), lock_pip.shared(side_text)
    assert main["torch"].startswith("2.10.") and "tensorflow" not in main
    assert side["tensorflow"].startswith("2.20.") and "torch" not in side
    assert {"nvidia-cuda-runtime-cu12", "nvidia-cublas-cu12", "nvidia-cudnn-cu12", "nvidia-nccl-cu12"} <= shared.keys()
    assert {name: main.get(name) for name in shared} == shared, "shared pins differ from the main lock's"
    assert not {n for n in side if n.startswith("nvidia-") and n in main}, "TensorFlow's venv installs torch's CUDA"


# --- built through the factory ------------------------------------------------------------------------------------

BUILT = [pytest.param(v, marks=[needs_all_images] if v == "gpu" else []) for v in VARIANTS]


@pytest.fixture(scope="module")
def images(docker_engine, real_matrix) -> dict[str, str]:
    """The variants this run builds, like the main job does (no --wheels: the matrix names the cpu wheelhouse)."""
    keys = {v: k for v, k in KEYS.items() if v == "cpu" or ALL_IMAGES}
    refs = build_or_fail(real_matrix, ["base-geo/debian", *keys.values()], ROOT / ".vre")
    return {variant: refs[key] for variant, key in keys.items()} | {"base-geo": refs["base-geo/debian"]}


def layers_of(ref: str) -> list[str]:
    return engine.inspect(ref)["RootFS"]["Layers"]


@pytest.mark.parametrize("variant", BUILT)
def test_variant_builds_on_every_layer_of_base_geo(images, variant):
    """Both variants build FROM base-geo's content stage (base-geo without its compat-suite layer): they share every
    layer below their own, with each other and with base-geo."""
    parent = layers_of(content_ref(images["base-geo"]))
    assert layers_of(images["base-geo"])[:len(parent)] == parent
    assert layers_of(images[variant])[:len(parent)] == parent, f"deep-learning {variant} rebuilt a base-geo layer"


@needs_all_images
def test_variants_differ_only_above_base_geo(images):
    parent = len(layers_of(content_ref(images["base-geo"])))
    cpu, gpu = layers_of(images["cpu"]), layers_of(images["gpu"])
    assert cpu[:parent] == gpu[:parent] and cpu[parent:] != gpu[parent:]


@pytest.mark.parametrize("variant", BUILT)
def test_added_size_within_budget(images, variant, record_property):
    added = engine.inspect(images[variant])["Size"] - engine.inspect(images["base-geo"])["Size"]
    record_property(f"deep-learning-{variant} added bytes", added)
    assert 0 < added <= BUDGET[variant], f"deep-learning {variant} adds {added / GB:.2f} GB " \
                                         f"(budget {BUDGET[variant] / GB:.1f} GB)"


def test_build_summary_shows_the_variants(images):
    built = [v for v in VARIANTS if v in images]
    result = CliRunner().invoke(cli.app, ["build", "deep-learning", "--flavor", "debian",
                                          *[arg for v in built for arg in ("--variant", v)]])  # from cache
    assert result.exit_code == 0, result.output
    for variant in built:
        assert re.search(rf"deep-learning\s*│\s*debian\s*│\s*{variant}\s*│\s*built\s*│\s*[\d.]+ GB", result.output), \
            result.output


# --- deliberately broken images -----------------------------------------------------------------------------------

def broken_image(tmp_path, base: str, name: str, script: str) -> str:
    ref = f"eo-vre-test/{name}:latest"
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nUSER root\nRUN {script}\nUSER 1000\n")
    engine.docker("build", "-q", "-t", ref, str(tmp_path))
    return ref


TORCH_LIB = "/srv/venv/lib/python3.11/site-packages/torch/lib"


def test_second_openmp_runtime_fails_the_import_order_tests(images, tmp_path):
    """torch's lib folder gets its own libgomp file back (as PyPI's wheel ships it): the orders that import torch
    before OTB now map another OpenMP runtime than the ones that import OTB first, and the test names both."""
    ref = broken_image(tmp_path, images["cpu"], "broken-openmp",
                       f"cp --remove-destination /usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0 {TORCH_LIB}/libgomp.so.1")
    try:
        result = run_compat(ref, Workspace(tmp_path), pytest_args=[
            "-m", "coexistence", "-k", "import_order and (torch-otb-gdal-tensorflow or otb-torch-gdal-tensorflow)"])
        log = result.log.read_text()
        assert result.failed == 1 and result.passed == 1, log[-3000:]
        assert re.search(r"FAILED .*test_import_order\[notebook:torch-otb-gdal-tensorflow\]", log), log[-3000:]
        assert "the OpenMP runtime depends on import order" in log and f"{TORCH_LIB}/libgomp.so.1" in log, log[-3000:]
    finally:
        engine.docker("image", "rm", "-f", ref, check=False)


def test_second_proj_data_fails_the_data_test(images, tmp_path):
    """PROJ_DATA pointing to a copy of proj.db elsewhere: the data test names both installations."""
    ref = broken_image(tmp_path, images["cpu"], "broken-proj-data",
                       "mkdir -p /opt/other/share/proj && cp /usr/share/proj/proj.db /opt/other/share/proj/ "
                       "&& echo 'export PROJ_DATA=/opt/other/share/proj' > /etc/vre/start.d/99-other-proj.sh")
    try:
        result = run_compat(ref, Workspace(tmp_path),
                            pytest_args=["-m", "coexistence", "-k", "gdal_and_proj_data_same_everywhere"])
        log = result.log.read_text()
        assert result.failed == 1, log[-3000:]
        assert "/opt/other/share/proj" in log and "two installations" in log, log[-3000:]
    finally:
        engine.docker("image", "rm", "-f", ref, check=False)
