"""The gpu variant: its CUDA libraries resolve and load everywhere (no GPU needed), the frameworks are CUDA builds,
and, on a GPU host (`vre test --gpu`), both frameworks see the device, multiply on it, and load cuDNN and NCCL."""
import os
import sys

import pytest

from vre_compat import libraries
from vre_compat.helpers import run_ok
from vre_compat.tests.deep_learning import stack

pytestmark = [pytest.mark.deep_learning, pytest.mark.gpu,
              pytest.mark.skipif(os.environ.get("VRE_VARIANT") != "gpu", reason="not the gpu variant")]

# Provided by the host's driver at run time (the NVIDIA container runtime mounts them): never in an image.
DRIVER_LIBRARIES = ("libcuda.so.1", "libnvidia-ml.so.1")
# Optional pieces that need host hardware stacks: cuFile's RDMA plugin (GPUDirect Storage over InfiniBand) wants
# the Mellanox verbs provider (libmlx5) of the host's RDMA stack; nothing here loads it unless GDS over IB is set up.
OPTIONAL = {"libcufile_rdma.so.1": "libmlx5.so.1"}
REQUIRED = {"libcudart", "libcudnn", "libnccl"}
# ONE CUDA stack: each of these libraries (every component: libcublas and libcublasLt, libcudnn_ops, ...) is one file
# in the whole image, whatever its CUDA major, shared by every environment that uses it.
ONE_COPY = ("libcudart", "libcublas", "libcudnn")

# Loads every CUDA library of the environment with ctypes, repeating until no more load (a library loads once those
# it needs are loaded: pip's CUDA wheels find each other only through the process). PyPI's CUDA libraries are in the
# nvidia-* packages (site-packages/nvidia/...), conda-forge's in the environment's lib/.
LOAD_ALL = r"""
import ctypes, glob, importlib.util, json, os, sys
spec = importlib.util.find_spec("nvidia")
roots = list(spec.submodule_search_locations) if spec else []
if roots:
    found = [f for r in roots for f in glob.glob(os.path.join(r, "**", "lib*.so*"), recursive=True)]
else:
    names = ("cudart", "cublas", "cudnn", "nccl", "cufft", "curand", "cusolver", "cusparse", "nvrtc", "nvJitLink")
    roots = [os.path.join(sys.prefix, "lib")]
    found = [f for n in names for f in glob.glob(os.path.join(roots[0], f"lib{n}*.so*"))]
pending = sorted({os.path.realpath(f) for f in found if os.path.isfile(f)})
loaded, errors = [], {}
while pending:
    progress = False
    for path in list(pending):
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as err:
            errors[path] = str(err)
            continue
        pending.remove(path); loaded.append(path); errors.pop(path, None); progress = True
    if not progress:
        break
families = sorted({os.path.basename(p).split(".so")[0] for p in loaded})
print(json.dumps({"roots": roots, "loaded": loaded, "errors": errors, "families": families}))
"""

TORCH_CUDA = r"""
import json, torch
print(json.dumps({"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                  "nccl": ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else None,
                  "devices": torch.cuda.device_count()}))
"""

TF_CUDA = r"""
import json, tensorflow as tf
info = tf.sysconfig.get_build_info()
print(json.dumps({"cuda": info.get("cuda_version"), "cudnn": info.get("cudnn_version"),
                  "devices": len(tf.config.list_physical_devices("GPU"))}))
"""


ENVS = [pytest.param(env, id=env.name) for env in stack.environments()]


def framework(env) -> str:
    return "torch" if "torch" in env.frameworks else "tensorflow"


def test_one_copy_of_each_cuda_library():
    """libcudart, libcublas and libcudnn: the real shared objects (by SONAME; links and hard links are no copies)
    anywhere on the image's filesystem, exactly one of each (two CUDA stacks, e.g. torch's and TensorFlow's own
    nvidia-* wheels, or two CUDA majors, mean two)."""
    found = libraries.copies("/", ONE_COPY)
    missing = [name for name in ONE_COPY if name not in found]
    assert not missing, f"no {missing} in the image (found {sorted(found)}): the gpu variant has no CUDA stack?"
    several = {name: paths for name, paths in found.items() if len(paths) > 1}
    assert not several, "more than one copy of a CUDA library (one CUDA stack expected):\n" + "\n".join(
        f"  {name}: {len(paths)} copies: {', '.join(paths)}" for name, paths in several.items())


@pytest.mark.parametrize("env", ENVS)
def test_cuda_libraries_load(env):
    """Every library of the environment's nvidia-* wheels loads, except what needs the host's driver."""
    result = stack.run_json(env, LOAD_ALL)
    assert result["loaded"] or result["errors"], f"{env.name} environment ({env.python}) has no CUDA libraries " \
                                                 f"(looked in {result['roots']})"
    broken = {path: err for path, err in result["errors"].items()
              if not any(d in err for d in DRIVER_LIBRARIES) and OPTIONAL.get(os.path.basename(path), "?") not in err}
    assert not broken, f"{env.name} environment: CUDA libraries that do not load: " + \
        "; ".join(f"{os.path.basename(p)}: {e}" for p, e in broken.items())
    missing = REQUIRED - set(result["families"])
    assert not missing, f"{env.name} environment lacks {sorted(missing)} (loaded {result['families']})"


def test_torch_is_a_cuda_build_and_links_its_libraries():
    env = next(e for e in stack.environments() if "torch" in e.frameworks)
    info = stack.run_json(env, TORCH_CUDA)
    assert info["cuda"], f"torch reports no CUDA: {info}"
    assert info["cudnn"], f"torch cannot load cuDNN: {info}"
    assert info["nccl"], f"torch cannot load NCCL: {info}"
    import torch

    # PyPI's torch keeps its libraries in torch/lib, conda-forge's in the environment's lib/
    candidates = [os.path.join(os.path.dirname(torch.__file__), "lib"), os.path.join(sys.prefix, "lib")]
    lib = next((os.path.join(d, "libtorch_cuda.so") for d in candidates
                if os.path.exists(os.path.join(d, "libtorch_cuda.so"))), None)
    assert lib, f"no libtorch_cuda.so in {candidates}"
    ldd = run_ok(["ldd", lib]).stdout
    missing = [line.split()[0] for line in ldd.splitlines()
               if "not found" in line and line.split()[0] not in DRIVER_LIBRARIES]
    assert not missing, f"{lib} needs libraries that do not resolve: {missing}"


def test_tensorflow_is_a_cuda_build():
    env = next(e for e in stack.environments() if "tensorflow" in e.frameworks)
    info = stack.run_json(env, TF_CUDA)
    assert info["cuda"] and info["cudnn"], f"TensorFlow is not built with CUDA and cuDNN: {info}"


def require_gpu(env: stack.Env, code: str, what: str) -> dict:
    info = stack.run_json(env, code)
    if info["devices"] == 0:
        visible = os.environ.get("NVIDIA_VISIBLE_DEVICES")
        if visible and visible not in ("void", "none"):
            pytest.fail(f"the container was given GPUs (NVIDIA_VISIBLE_DEVICES={visible}) but {what} sees none")
        pytest.skip(f"no GPU visible to {what} (device count 0; on a GPU host run `vre test --gpu`)")
    return info


MATMUL_TORCH = r"""
import json, torch
a = torch.randn(512, 512); b = torch.randn(512, 512)
on_gpu = (a.cuda() @ b.cuda()).cpu()
conv = torch.nn.functional.conv2d(torch.randn(1, 3, 32, 32).cuda(), torch.randn(8, 3, 3, 3).cuda())
print(json.dumps({"max_error": float((on_gpu - a @ b).abs().max()), "device": torch.cuda.get_device_name(0),
                  "cudnn": torch.backends.cudnn.is_available(), "conv": list(conv.shape),
                  "nccl": torch.cuda.nccl.is_available([torch.zeros(1).cuda()])}))
"""

MATMUL_TF = r"""
import json, numpy as np, tensorflow as tf
a = np.random.rand(512, 512).astype("float32"); b = np.random.rand(512, 512).astype("float32")
with tf.device("/GPU:0"):
    c = tf.matmul(a, b)
    conv = tf.nn.conv2d(tf.random.normal((1, 32, 32, 3)), tf.random.normal((3, 3, 3, 8)), 1, "SAME")
print(json.dumps({"max_error": float(np.abs(c.numpy() - a @ b).max()), "device": c.device,
                  "conv": conv.shape.as_list()}))
"""


def test_torch_on_gpu():
    env = next(e for e in stack.environments() if "torch" in e.frameworks)
    require_gpu(env, TORCH_CUDA, "torch")
    result = stack.run_json(env, MATMUL_TORCH)
    assert result["max_error"] < 1e-2, f"matmul on {result['device']} differs from the CPU's: {result}"
    assert result["cudnn"] and result["conv"] == [1, 8, 30, 30], f"cuDNN convolution failed: {result}"
    assert result["nccl"], f"NCCL unavailable on {result['device']}"


def test_tensorflow_on_gpu():
    env = next(e for e in stack.environments() if "tensorflow" in e.frameworks)
    require_gpu(env, TF_CUDA, "TensorFlow")
    result = stack.run_json(env, MATMUL_TF)
    assert "GPU" in result["device"], f"TensorFlow ran the matmul on {result['device']}"
    assert result["max_error"] < 1e-2, f"matmul on GPU differs from numpy's: {result}"
