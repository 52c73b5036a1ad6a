"""`vre publish` of an image built for two platforms: one multi-platform index (amd64 + arm64) on a real loopback
registry (Debian's docker-registry), pulled by its digest on each platform as that platform's very image.

The images are tiny (Debian's static busybox for each arch, FROM scratch: no RUN step, so building the arm64 one
needs no emulation) and stand for an image the factory built natively and one built with `--platform linux/arm64`;
running the pulled arm64 image (`uname -m`) needs qemu-user's binfmt handlers (`make setup-emulation`) and skips
without them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from tests.testkit import REAL
from tests.testkit.registry import BINARY, remove, start_registry
from vre import engine, matrix
from vre.lock.apt import AptRoot, foundation_unit
from vre.publish import registry as publish
from vre.verify import verdicts
from vre.verify.compat import SuiteResult
from vre.workspace import Workspace

PLATFORMS = ("linux/amd64", "linux/arm64")
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


def busybox(root: Path, platform: str, real_matrix: matrix.Matrix) -> Path:
    """Debian's busybox-static for the platform's arch, checked against the archive's sha256; its binary's path."""
    arch = matrix.arch(platform)
    sources = foundation_unit(real_matrix).sources[:1]  # the bootstrap's suite: deb <mirror> <suite> main
    apt = AptRoot(workdir=Workspace.of(real_matrix.root).apt(f"test-busybox-{arch}"), arch=arch, sources=sources)
    apt.update()
    stanza = apt.show(["busybox-static"])[0]
    mirror = sources[0].split()[1]
    deb = requests.get(f"{mirror}/{stanza['Filename']}", timeout=120)
    deb.raise_for_status()
    assert hashlib.sha256(deb.content).hexdigest() == stanza["SHA256"], "busybox-static: not the archive's sha256"
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{arch}.deb").write_bytes(deb.content)
    subprocess.run(["dpkg-deb", "-x", str(root / f"{arch}.deb"), str(root / arch)], check=True)
    return root / arch / "bin" / "busybox"


@pytest.fixture(scope="module")
def two_platforms(docker_engine, real_matrix, tmp_path_factory):
    """A target built for amd64 (its plain tag, as a native build) and arm64 (its -arm64 tag, as --platform)."""
    if not Path(BINARY).is_file():
        pytest.skip(f"{BINARY} missing: run scripts/setup.sh (installs Debian's docker-registry)")
    if not shutil.which("dpkg-deb"):
        pytest.skip("dpkg-deb missing (Debian's dpkg)")
    root = tmp_path_factory.mktemp("index")
    name = f"test-index-{uuid.uuid4().hex[:6]}"  # unique: other runs may publish at the same time
    # base-geo's target (its tags, its platforms) under a repository of its own: the real images stay untouched.
    target = replace(real_matrix.targets["base-geo/debian"], repository=f"{REAL['name']}/{name}")
    assert target.platforms == PLATFORMS
    refs = {}
    try:
        for platform, as_built in (("linux/amd64", ""), ("linux/arm64", "linux/arm64")):
            context = root / matrix.arch(platform)
            context.mkdir()
            shutil.copy(busybox(root / "debs", platform, real_matrix), context / "busybox")
            (context / "Dockerfile").write_text('FROM scratch\nCOPY busybox /bin/busybox\n'
                                                'ENTRYPOINT ["/bin/busybox"]\n')
            refs[platform] = replace(target, platform=as_built).ref
            engine.docker("build", "--platform", platform, "-t", refs[platform], str(context), timeout=600)
        yield target, {p: engine.image_id(ref) for p, ref in refs.items()}
    finally:
        engine.docker("image", "rm", "-f", *refs.values(), check=False)


@pytest.fixture(scope="module")
def published(two_platforms, tmp_path_factory):
    """The index pushed under two tags (one immutable, one moving), as `vre publish` pushes a two-platform image."""
    target, images = two_platforms
    served = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        found = publish.platform_images(target)
        assert found == images, "the local images of each platform, found by their tags and architectures"
        repository = f"{served.host}/idx/{target.repository}"
        plan = publish.Plan(target=target, image_id=images["linux/amd64"], repository=repository,
                            immutable=["debian-2026-11-30"], moving=["debian"], images=found)
        pushed = publish.push([plan], served.host)
        yield served, plan, pushed
    finally:
        remove(served)


def test_one_index_per_tag_and_each_platform_under_its_arch_tag(published):
    served, plan, pushed = published
    name = plan.repository.split("/", 1)[1]
    assert served.tags(name) == sorted(["debian", "debian-amd64", "debian-arm64", "debian-2026-11-30",
                                        "debian-2026-11-30-amd64", "debian-2026-11-30-arm64"])
    indexes = [p for p in pushed if p.platforms]
    assert [p.ref.rsplit(":", 1)[1] for p in indexes] == ["debian-2026-11-30", "debian"]  # immutable first
    assert all(p.platforms == PLATFORMS for p in indexes)
    assert {served.digest(name, "debian"), served.digest(name, "debian-2026-11-30")} == {indexes[0].digest}
    # What the registry holds under the tag is the index of exactly the two tested images.
    assert publish.remote_image(f"{plan.repository}:debian", served.host) == plan.identity
    assert plan.identity == ", ".join(f"{p}={plan.images[p]}" for p in PLATFORMS)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_index_digest_pulls_each_platforms_own_image(published, platform):
    served, plan, pushed = published
    ref = f"{plan.repository}@{next(p for p in pushed if p.platforms).digest}"
    try:
        engine.docker("pull", "--platform", platform, ref, timeout=600)
        info = engine.inspect(ref)
        assert info is not None and f"{info['Os']}/{info['Architecture']}" == platform
        assert info["Id"] == plan.images[platform], f"{ref} on {platform} is not the image that was tested"
    finally:
        engine.docker("image", "rm", ref, check=False)


def can_run(platform: str) -> bool:
    """This machine's own platform, or one its binfmt handlers emulate (arch-test runs a tiny binary of it)."""
    if UNAME[platform] == os.uname().machine:
        return True
    return bool(shutil.which("arch-test")) and subprocess.run(["arch-test", matrix.arch(platform)],
                                                              capture_output=True).returncode == 0


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_pulled_index_runs_as_its_platform(published, platform):
    if not can_run(platform):
        pytest.skip(f"this machine cannot run {platform} binaries: `make setup-emulation` (qemu-user-static)")
    served, plan, pushed = published
    ref = f"{plan.repository}@{next(p for p in pushed if p.platforms).digest}"
    try:
        out = engine.docker("run", "--rm", "--platform", platform, ref, "uname", "-m", timeout=300).stdout
        assert out.decode().strip() == UNAME[platform]
    finally:
        engine.docker("image", "rm", ref, check=False)


def test_each_platforms_image_needs_its_own_passing_test(two_platforms, real_matrix, tmp_path):
    """Neither image has a verdict in this workspace: both are refused, the arm64 one with its --platform command."""
    target, images = two_platforms
    need = "has no passing test on record"
    with pytest.raises(publish.PublishError) as refused:
        publish.plan(real_matrix, [target], "127.0.0.1:1/none", workspace=Workspace(tmp_path / ".vre"))
    message = " ".join(str(refused.value).split())
    assert f"{target.ref} (image {images['linux/amd64'].removeprefix('sha256:')[:12]}) {need}" in message
    arm = replace(target, platform="linux/arm64").ref
    assert f"{arm} (image {images['linux/arm64'].removeprefix('sha256:')[:12]}) {need}" in message
    assert f"run `vre test {target.image} --flavor debian --platform linux/arm64`" in message


def test_an_untested_platform_can_be_left_out(two_platforms, published, real_matrix, tmp_path):
    """Only the amd64 image passed here (an arm64 build from another day lies about): a plain publish refuses and says
    how to publish the tested platform alone; `--platform linux/amd64` plans that one image, not an index."""
    target, images = two_platforms
    served, _, _ = published
    workspace = Workspace(tmp_path / ".vre")
    passed = SuiteResult(ref=target.ref, image_id=images["linux/amd64"], passed=1, exit_code=0)
    assert verdicts.record(workspace, passed, None, complete=True)
    with pytest.raises(publish.PublishError) as refused:
        publish.plan(real_matrix, [target], served.host, workspace=workspace)
    message = " ".join(str(refused.value).split())
    assert f"{replace(target, platform='linux/arm64').ref} (image" in message
    assert f"`vre publish {target.image} --flavor debian --platform linux/amd64 --registry {served.host}`" in message
    [plan] = publish.plan(real_matrix, [target], served.host, workspace=workspace, platforms=("linux/amd64",))
    assert plan.images == {"linux/amd64": images["linux/amd64"]} and plan.image_id == images["linux/amd64"]
    assert plan.identity == images["linux/amd64"]  # one platform's image: its tags name it, no index


def test_a_platform_asked_for_must_be_built_and_in_the_matrix(two_platforms, real_matrix, tmp_path):
    target, _ = two_platforms
    alone = replace(target, repository=f"{target.repository}-none")  # never built
    with pytest.raises(publish.PublishError) as refused:
        publish.plan(real_matrix, [target, alone], "127.0.0.1:1/none", workspace=Workspace(tmp_path / ".vre"),
                     platforms=("linux/arm64", "linux/s390x"))
    message = " ".join(str(refused.value).split())
    assert f"{target.ref}: no platform linux/s390x in the matrix (expected one of: linux/amd64, linux/arm64)" in message
    assert f"{alone.ref}: not built for linux/arm64: run `vre build {alone.image} --flavor debian --platform " \
           f"linux/arm64 --test`" in message
