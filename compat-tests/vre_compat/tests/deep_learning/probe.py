"""Coexistence probe, run by path in a fresh process or a Jupyter kernel of any environment of the image.

    python probe.py imports gdal,torch,tensorflow,otb[,qgis]   import in this order, use each, report
    python probe.py roundtrip WORKDIR FRAMEWORK[,FRAMEWORK] [qgis] [no-otb]
                                                                GDAL -> OTB -> GDAL -> train -> GDAL (-> QGIS)
    python probe.py sklearn FRAMEWORK[,FRAMEWORK]               import them, then scikit-learn's OpenMP workloads

Self-contained (standard library + the stack under test): the TensorFlow environment of an image may not have
vre_compat installed. A failing step raises (its message names what broke); the report is the last stdout line,
prefixed with REPORT_PREFIX, so that library logs printed before it (pyotb, TensorFlow) do not matter.
"""
import json
import os
import re
import sys

REPORT_PREFIX = "vre-probe-report: "
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Shared libraries of which a process must map exactly one file. OpenMP counts libgomp (GNU), libomp (LLVM) and
# libiomp5 (Intel) together: two runtimes are as bad as two copies of one.
FAMILIES = {
    "libstdc++": r"libstdc\+\+\.so",
    "openmp": r"lib(gomp|omp|iomp5)[.-]",
    "libgdal": r"libgdal[.-]",
    "libproj": r"libproj[.-]",
    "libcudart": r"libcudart[.-]",
    "libcudnn": r"libcudnn[.-]",
    "libnccl": r"libnccl[.-]",
}
# 10 m pixels, UTM zone 31N, upper-left corner at (360000, 4830000)
GEOTRANSFORM = (360000.0, 10.0, 0.0, 4830000.0, 0.0, -10.0)
EPSG = 32631


def mapped_libraries() -> dict:
    """{family: sorted real paths of its files mapped in this process}"""
    with open("/proc/self/maps") as maps:
        paths = {line.split(None, 5)[-1].strip() for line in maps if "/" in line}
    found = {}
    for path in paths:
        name = os.path.basename(path)
        for family, pattern in FAMILIES.items():
            if re.match(pattern, name):
                found.setdefault(family, set()).add(os.path.realpath(path))
    return {family: sorted(files) for family, files in found.items()}


def data_dirs() -> dict:
    """Where GDAL and PROJ take their data from in this process (and the variables that steer them)."""
    from osgeo import gdal, osr

    gdal_file = gdal.FindFile("gdal", "gdalvrt.xsd")
    proj_db_dir = next((p for p in osr.GetPROJSearchPaths() or [] if os.path.exists(os.path.join(p, "proj.db"))),
                       None)
    report = {
        "gdal_data": os.path.realpath(os.path.dirname(gdal_file)) if gdal_file else None,
        "proj_data": os.path.realpath(proj_db_dir) if proj_db_dir else None,
        "env": {k: os.environ.get(k) for k in ("GDAL_DATA", "PROJ_DATA", "PROJ_LIB")},
    }
    try:
        import pyproj
    except ImportError:
        pass
    else:
        report["pyproj_data"] = os.path.realpath(pyproj.datadir.get_data_dir())
    return report


# --- one import, and one small use, per component --------------------------------------------------------------

def use_gdal():
    import numpy as np
    from osgeo import gdal, osr

    ds = gdal.GetDriverByName("MEM").Create("", 8, 8, 1, gdal.GDT_Float32)
    ds.GetRasterBand(1).WriteArray(np.ones((8, 8), "float32"))
    assert ds.GetRasterBand(1).ReadAsArray().sum() == 64, "GDAL MEM round trip"
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(4326)
    dst.ImportFromEPSG(EPSG)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x, _, _ = osr.CoordinateTransformation(src, dst).TransformPoint(1.44, 43.6)
    assert abs(x - 374090.4) < 1, f"PROJ through osr puts Toulouse at x={x}"
    return gdal.__version__


def use_torch():
    import torch

    conv = torch.nn.Conv2d(1, 2, 3)
    out = conv(torch.ones(1, 1, 8, 8))
    assert out.shape == (1, 2, 6, 6)
    return torch.__version__


def use_tensorflow():
    import tensorflow as tf

    value = float(tf.reduce_sum(tf.matmul(tf.ones((4, 4)), tf.ones((4, 4)))))
    assert value == 64.0, value
    return tf.__version__


def use_otb():
    import numpy as np
    import otbApplication
    import pyotb  # noqa: F401  (sets OTB up on import: it must find it as the image has it)

    app = otbApplication.Registry.CreateApplication("BandMath")
    assert app is not None, f"no BandMath among {otbApplication.Registry.GetAvailableApplications()}"
    app.SetImageFromNumpyArray("il", np.arange(12, dtype="float32").reshape(3, 4))
    app.SetParameterString("exp", "im1b1*2")
    app.Execute()
    assert (app.GetImageAsNumpyArray("out") == np.arange(12).reshape(3, 4) * 2).all(), "OTB BandMath result"
    return "otbApplication"


_QGIS_APP = None


def qgis_app():
    global _QGIS_APP
    if _QGIS_APP is None:
        from qgis.core import QgsApplication

        _QGIS_APP = QgsApplication([], False)
        _QGIS_APP.initQgis()
    return _QGIS_APP


def use_qgis():
    from qgis.core import Qgis, QgsCoordinateReferenceSystem

    qgis_app()
    crs = QgsCoordinateReferenceSystem(f"EPSG:{EPSG}")
    assert crs.isValid(), f"QGIS cannot load EPSG:{EPSG}"
    return Qgis.QGIS_VERSION


USES = {"gdal": use_gdal, "torch": use_torch, "tensorflow": use_tensorflow, "otb": use_otb, "qgis": use_qgis}
IMPORTS = {  # what "importing" each component means
    "gdal": "from osgeo import gdal, gdal_array, osr",
    "torch": "import torch",
    "tensorflow": "import tensorflow",
    "otb": "import otbApplication, pyotb",
    "qgis": "import qgis.core",
}


def imports(order: list[str]) -> dict:
    for name in order:
        exec(IMPORTS[name], {})
    versions = {name: USES[name]() for name in order}
    report = {"order": order, "versions": versions, "libraries": mapped_libraries(), "executable": sys.executable}
    if "gdal" in order:
        report["data"] = data_dirs()
    return report


# --- the round trip --------------------------------------------------------------------------------------------

def tiles(array, size):
    rows, cols = array.shape
    return [array[r:r + size, c:c + size] for r in range(0, rows, size) for c in range(0, cols, size)]


def untile(parts, shape, size):
    import numpy as np

    out = np.zeros(shape, "float32")
    cols = shape[1] // size
    for i, part in enumerate(parts):
        r, c = divmod(i, cols)
        out[r * size:(r + 1) * size, c * size:(c + 1) * size] = part
    return out


def train_torch(x, y, steps):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 1, 3, padding=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x[:, None]), torch.from_numpy(y[:, None])
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(xt), yt)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
        yield losses
    with torch.no_grad():
        yield model(xt)[:, 0].numpy()


def train_tensorflow(x, y, steps):
    import tensorflow as tf

    tf.random.set_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((None, None, 1)),
                                 tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                                 tf.keras.layers.Conv2D(1, 3, padding="same")])
    optimizer = tf.keras.optimizers.Adam(0.01)
    xt, yt = tf.constant(x[..., None]), tf.constant(y[..., None])
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(xt) - yt))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
        yield losses
    yield model(xt).numpy()[..., 0]


TRAINERS = {"torch": train_torch, "tensorflow": train_tensorflow}


def roundtrip(workdir: str, frameworks: list[str], with_qgis: bool, with_otb: bool = True, steps: int = 30,
              tile: int = 16) -> dict:
    import numpy as np
    from osgeo import gdal, osr

    gdal.UseExceptions()

    os.makedirs(workdir, exist_ok=True)
    # 1. GDAL writes a georeferenced raster
    rows, cols = 64, 96
    yy, xx = np.mgrid[0:rows, 0:cols].astype("float32")
    source = (np.sin(xx / 7.0) + np.cos(yy / 5.0)).astype("float32")
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    src_path = os.path.join(workdir, "source.tif")
    ds = gdal.GetDriverByName("GTiff").Create(src_path, cols, rows, 1, gdal.GDT_Float32)
    ds.SetGeoTransform(GEOTRANSFORM)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(source)
    ds = None
    # 2. an OTB application on it, in this process (an image without OTB, arm64: GDAL writes numpy's labels)
    otb_path = os.path.join(workdir, "otb.tif")
    if with_otb:
        otb_bandmath(src_path, otb_path)
    else:
        ds = gdal.GetDriverByName("GTiff").CreateCopy(otb_path, gdal.Open(src_path))
        ds.GetRasterBand(1).WriteArray((source > 0).astype("float32"))
        ds = None
    # 3. GDAL reads it back: the labels, on the same grid
    ds = gdal.Open(otb_path)
    labels = ds.GetRasterBand(1).ReadAsArray().astype("float32")
    assert ds.GetGeoTransform() == GEOTRANSFORM, f"OTB changed the geotransform: {ds.GetGeoTransform()}"
    assert osr.SpatialReference(wkt=ds.GetProjection()).IsSame(srs), "OTB changed the CRS"
    np.testing.assert_array_equal(labels, (source > 0).astype("float32"), err_msg="OTB BandMath result")
    ds = None
    # 4. a small CNN learns labels from source on 16x16 tiles; several frameworks train side by side (interleaved)
    x, y = np.stack(tiles(source, tile)), np.stack(tiles(labels, tile))
    runs = {name: TRAINERS[name](x, y, steps) for name in frameworks}
    losses = {}
    for _ in range(steps):
        for name, run in runs.items():
            losses[name] = next(run)
    predictions = {name: next(run) for name, run in runs.items()}
    for name, history in losses.items():
        assert history[-1] < history[0] * 0.8, f"{name}: training did not reduce the loss: {history}"
    # 5. GDAL writes each prediction with the source's georeferencing
    outputs = {}
    for name, prediction in predictions.items():
        path = os.path.join(workdir, f"prediction-{name}.tif")
        out = gdal.GetDriverByName("GTiff").Create(path, cols, rows, 1, gdal.GDT_Float32)
        out.SetGeoTransform(GEOTRANSFORM)
        out.SetProjection(srs.ExportToWkt())
        out.GetRasterBand(1).WriteArray(untile(prediction, (rows, cols), tile))
        out = None
        check = gdal.Open(path)
        assert check.GetGeoTransform() == GEOTRANSFORM, f"{path}: geotransform {check.GetGeoTransform()}"
        assert osr.SpatialReference(wkt=check.GetProjection()).IsSame(srs), f"{path}: CRS changed"
        outputs[name] = path
    report = {"losses": {k: [v[0], v[-1]] for k, v in losses.items()}, "outputs": outputs}
    # 6. QGIS opens the prediction as a layer and runs a processing algorithm on it
    if with_qgis:
        report["qgis"] = qgis_part(next(iter(outputs.values())))
    report.update(libraries=mapped_libraries(), data=data_dirs(), executable=sys.executable)
    return report


def otb_bandmath(src_path: str, out_path: str) -> None:
    import otbApplication

    app = otbApplication.Registry.CreateApplication("BandMath")
    assert app is not None, "OTB: no BandMath application"
    app.SetParameterStringList("il", [src_path])
    app.SetParameterString("out", out_path)
    app.SetParameterOutputImagePixelType("out", otbApplication.ImagePixelType_float)
    app.SetParameterString("exp", "im1b1 > 0 ? 1 : 0")
    app.ExecuteAndWriteOutput()


def qgis_part(path: str) -> dict:
    from qgis.core import QgsApplication, QgsRasterLayer

    qgis_app()
    layer = QgsRasterLayer(path, "prediction")
    assert layer.isValid(), f"QGIS cannot open {path} as a raster layer: {layer.error().summary()}"
    assert layer.crs().authid() == f"EPSG:{EPSG}", f"QGIS reads the CRS of {path} as {layer.crs().authid()!r}"
    plugins = os.path.join(QgsApplication.pkgDataPath(), "python", "plugins")
    if plugins not in sys.path:
        sys.path.append(plugins)
    import processing
    from processing.core.Processing import Processing

    Processing.initialize()
    result = processing.run("native:rasterlayerstatistics", {"INPUT": layer, "BAND": 1})
    assert result.get("MAX") is not None, f"native:rasterlayerstatistics returned {result}"
    return {"crs": layer.crs().authid(), "mean": result.get("MEAN"), "max": result.get("MAX")}


def sklearn_workloads(frameworks: list[str]) -> dict:
    """scikit-learn's own OpenMP loops (k-means, histogram gradient boosting) on two threads, after the frameworks
    have loaded their OpenMP runtime; {"missing": why} in an environment without scikit-learn."""
    for name in frameworks:
        exec(IMPORTS[name], {})
    try:
        from sklearn.cluster import KMeans
        from sklearn.datasets import make_blobs, make_classification
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import adjusted_rand_score
        from threadpoolctl import threadpool_limits
    except ImportError as err:
        return {"missing": str(err)}
    with threadpool_limits(limits=2, user_api="openmp"):
        x, labels = make_blobs(n_samples=3000, centers=4, cluster_std=0.5, random_state=0)
        kmeans = KMeans(n_clusters=4, n_init=3, random_state=0).fit(x)
        x, y = make_classification(n_samples=4000, n_features=20, n_informative=10, random_state=0)
        model = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(x[:3000], y[:3000])
    return {"rand": adjusted_rand_score(labels, kmeans.labels_), "accuracy": model.score(x[3000:], y[3000:]),
            "libraries": mapped_libraries()}


def main(argv: list[str]) -> dict:
    command = argv[0]
    if command == "imports":
        return imports(argv[1].split(","))
    if command == "roundtrip":
        frameworks = [f for f in argv[2].split(",") if f]
        return roundtrip(argv[1], frameworks, with_qgis="qgis" in argv[3:], with_otb="no-otb" not in argv[3:])
    if command == "sklearn":
        return sklearn_workloads([f for f in argv[1].split(",") if f])
    raise SystemExit(f"unknown probe {command!r}")


if __name__ == "__main__":
    print(REPORT_PREFIX + json.dumps(main(sys.argv[1:])), flush=True)
