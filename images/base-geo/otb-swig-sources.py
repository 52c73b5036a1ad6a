"""Extract OTB's SWIG wrapper sources (Modules/Wrappers/SWIG, CMake/PythonCompile.py) from Debian's otb orig tarball.

Run by build.sh in the builder stage, on the image's python3: otb-swig-sources.py DOWNLOAD_DIR DEST_DIR. The tarball
is streamed once and removed; the SWIG folder is contiguous in it, so reading stops right after it.
"""
import glob
import os
import sys
import tarfile
dl, dest = sys.argv[1], sys.argv[2]
tarball, = glob.glob(os.path.join(dl, "otb_*.orig.tar.*"))
swig, extra = "Modules/Wrappers/SWIG/", {"CMake/PythonCompile.py"}
seen = False
with tarfile.open(tarball, "r|*") as tf:
    for m in tf:
        name = m.name[2:] if m.name.startswith("./") else m.name
        if name.startswith(swig) or name in extra:
            seen = seen or name.startswith(swig)
            extra.discard(name)
            if ".." in name.split("/") or not (m.isfile() or m.isdir()):
                sys.exit(f"unexpected member {m.name}")
            path = os.path.join(dest, name)
            if m.isdir():
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(tf.extractfile(m).read())
        elif seen and not extra:
            break  # the SWIG directory is contiguous in the archive: done
if not seen or extra:
    sys.exit("OTB SWIG sources not found in " + tarball)
os.remove(tarball)
