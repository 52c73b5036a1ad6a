"""`vre extend`'s folder checks: every bad extension folder refused before any image is read, naming the file and what
is expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vre.extend import ExtendError
from vre.extend import folder as folder_mod


def make_folder(root: Path, name: str, files: dict[str, str]) -> Path:
    folder = root / name
    for file, text in files.items():
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_text(textwrap.dedent(text))
    folder.mkdir(exist_ok=True)
    return folder


def one_line(text: str) -> str:
    return " ".join(text.split())


# --- the folder, checked before anything is read from an image ------------------------------------------------------

@pytest.mark.parametrize("files,message", [
    ({"Dockerfile": "FROM scratch\n"}, "my-ext/Dockerfile: unknown file (expected one of: README.md, apt.txt"),
    ({"requirements.in": "-r other.txt\n"}, "my-ext/requirements.in line 1: '-r other.txt' is not a requirement"),
    ({"requirements.in": "humanize\nrequests ==< 2\n"}, "my-ext/requirements.in line 2: 'requests ==< 2' is not a "
                                                        "requirement"),
    ({"requirements.in": "pkg @ https://example.org/pkg.whl\n"}, "installs from a URL (expected a package of the "
                                                                  "index"),
    ({"environment.yml": "dependencies: [libfoo]\n"}, "my-ext/environment.yml: a conda-flavor spec, but the base "
                                                      "image is debian flavor (expected requirements.in)"),
    ({"apt.txt": "jq\nNot_A_Package\n"}, "my-ext/apt.txt: 'Not_A_Package' is not a Debian package name"),
    ({"README.md": "notes\n"}, "nothing to add (expected at least one of apt.txt, requirements.in, postBuild, start)"),
    ({"tests": "not a folder"}, "my-ext/tests: expected a folder of pytest files"),
])
def test_bad_folders_are_refused_naming_the_file_and_what_is_expected(tmp_path, files, message):
    folder = make_folder(tmp_path, "my-ext", files)
    with pytest.raises(ExtendError) as refused:
        folder_mod.load(folder, "debian", ["base-geo"])
    assert message in one_line(str(refused.value))


def test_a_missing_folder_and_a_layer_name_of_the_base_are_refused(tmp_path):
    with pytest.raises(ExtendError, match="no such folder"):
        folder_mod.load(tmp_path / "absent", "debian", ["base-geo"])
    folder = make_folder(tmp_path, "base-geo", {"apt.txt": "jq\n"})
    with pytest.raises(ExtendError, match="'base-geo' is already a layer of the base image"):
        folder_mod.load(folder, "debian", ["base-geo"])
    assert folder_mod.load(folder, "debian", ["base-geo"], layer="jq-tools").layer == "jq-tools"
