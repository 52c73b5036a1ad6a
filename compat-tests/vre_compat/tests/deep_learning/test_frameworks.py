"""PyTorch and TensorFlow are the builds the variant promises, and the "tensorflow" kernel runs TensorFlow with GDAL."""
import json
import os
from importlib import metadata

import pytest

from vre_compat.tests.deep_learning import stack

pytestmark = [pytest.mark.deep_learning]
VARIANT = os.environ.get("VRE_VARIANT", "")


def tf_env() -> stack.Env:
    return next(env for env in stack.environments() if "tensorflow" in env.components)


@pytest.mark.torch
def test_torch_build_matches_variant():
    import torch

    if VARIANT == "gpu":
        assert torch.version.cuda and torch.backends.cuda.is_built(), \
            f"gpu variant has torch {torch.__version__} without CUDA (torch.version.cuda={torch.version.cuda})"
    else:
        assert torch.version.cuda is None, \
            f"{VARIANT or 'this'} variant has the CUDA build of torch ({torch.__version__}, CUDA {torch.version.cuda})"


@pytest.mark.torch
def test_cpu_variant_carries_no_cuda():
    if VARIANT == "gpu":
        pytest.skip("gpu variant")
    cuda = sorted(d.metadata["Name"] for d in metadata.distributions()
                  if d.metadata["Name"] and d.metadata["Name"].lower().startswith(("nvidia-", "cuda-", "triton")))
    assert not cuda, f"{VARIANT or 'this'} variant installs CUDA packages: {cuda}"


@pytest.mark.torch
def test_torch_trains():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, f"loss {losses[0]} -> {losses[-1]}"


@pytest.mark.torch
def test_torch_compile_builds_its_kernels(tmp_path, monkeypatch):
    """TorchInductor writes C++ and compiles it with the image's g++ against Python's headers (the layer's apt.txt)."""
    import torch

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # a fresh cache: the compiler really runs
    compiled = torch.compile(lambda x: torch.sin(x * 2) + 1)
    x = torch.linspace(0, 1, 64)
    assert torch.allclose(compiled(x), torch.sin(x * 2) + 1)
    assert any(tmp_path.rglob("*.so")), "torch.compile produced no compiled kernel"


@pytest.mark.tensorflow
def test_tensorflow_kernel_registered():
    python = stack.kernel_python(stack.TF_KERNEL)
    assert python, f"no Jupyter kernel named {stack.TF_KERNEL!r}: TensorFlow notebooks have nowhere to run"
    assert os.access(python, os.X_OK), f"kernel {stack.TF_KERNEL!r} runs {python}, which is not executable"


@pytest.mark.tensorflow
def test_tensorflow_build_matches_variant():
    env = tf_env()
    info = stack.run_json(env, "import json, tensorflow as tf; print(json.dumps({'version': tf.__version__, "
                                   "'cuda': tf.test.is_built_with_cuda(), "
                                   "'build': dict(tf.sysconfig.get_build_info())}))")
    if VARIANT == "gpu":
        assert info["cuda"], f"gpu variant has TensorFlow {info['version']} without CUDA: {info['build']}"
    else:
        assert not info["cuda"], f"{VARIANT or 'this'} variant has a CUDA TensorFlow: {info['build']}"


@pytest.mark.tensorflow
def test_tensorflow_kernel_runs_tensorflow_with_gdal(tmp_path):
    """The "tensorflow" kernel trains a Keras model on a raster read with GDAL."""
    code = """
import json, numpy as np, tensorflow as tf
from osgeo import gdal
ds = gdal.GetDriverByName("MEM").Create("", 16, 16, 1, gdal.GDT_Float32)
ds.GetRasterBand(1).WriteArray(np.linspace(0, 1, 256, dtype="float32").reshape(16, 16))
x = ds.GetRasterBand(1).ReadAsArray().reshape(-1, 1)
model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])
model.compile(optimizer=tf.keras.optimizers.SGD(0.5), loss="mse")
history = model.fit(x, 3 * x + 1, epochs=20, verbose=0).history["loss"]
print(json.dumps({"first": history[0], "last": history[-1], "tf": tf.__version__, "gdal": gdal.__version__}))
"""
    out = stack.kernel_stdout(stack.TF_KERNEL, code, tmp_path, timeout=300)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["last"] < result["first"] / 10, f"Keras in kernel {stack.TF_KERNEL!r} did not train: {result}"
