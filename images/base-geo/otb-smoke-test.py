"""Smoke test of the OTB bindings build.sh made, run from its output with LD_BIND_NOW=1: every symbol resolves, the
applications are found without any environment, and a BandMath runs through the numpy bridge."""
import numpy
import otbApplication as otb
apps = otb.Registry.GetAvailableApplications()
assert "BandMath" in apps, apps
app = otb.Registry.CreateApplication("BandMath")
app.SetImageFromNumpyArray("il", numpy.arange(12, dtype="float32").reshape(3, 4))
app.SetParameterString("exp", "im1b1*2")
app.Execute()
res = app.GetImageAsNumpyArray("out")
assert (res == numpy.arange(12).reshape(3, 4) * 2).all(), res
print(f"otbApplication OK: {len(apps)} applications, BandMath through numpy OK")
