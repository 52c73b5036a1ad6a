"""`vre publish` against a real registry on loopback (Debian's docker-registry, tests/testkit/registry.py): the tag
scheme, the push/pull cycle by tag and by digest, refusal of untested and failed images, retries of transient errors,
a fast failure on bad credentials, and a registry that dies mid-run leaving every moving tag where it was."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from datetime import date, datetime, UTC
from pathlib import Path

import pytest
from tests.testkit.registry import BINARY, FlakyProxy, remove, start_registry
from typer.testing import CliRunner
from tests.testkit import REAL, build_or_fail, mini_repo

from vre import cli, engine, matrix
from vre.progress import Progress
from vre.publish import registry as publish
from vre.release import tags
from vre.verify.compat import run_compat
from vre.verify.verdicts import verdict
from vre.workspace import Workspace

SHA = "0123456789abcdef0123456789abcdef01234567"
DAY = date(2026, 11, 24)
# Breaks the image convention (VRE_VARIANT is cpu, gpu or empty), which the compat suite's `user` tests check.
BROKEN_START = "export VRE_VARIANT=broken\n"


# --- the tag scheme, without a registry ---------------------------------------------------------------------------

def test_tags_of_a_default_and_a_variant_target(real_matrix):
    base = tags.tags(real_matrix, real_matrix.targets["base-geo/debian"], SHA, DAY)
    assert base.immutable == ("debian-2026-11-24", "debian-0123456789ab")
    assert base.moving == ("debian", "latest")
    image = real_matrix.spec.images["deep-learning"]
    default, other = image.variants[0], image.variants[1]
    first = tags.tags(real_matrix, real_matrix.targets[f"deep-learning/{image.flavors[0]}/{default}"], SHA, DAY)
    assert first.moving == (f"{image.flavors[0]}-{default}", "latest")
    second = tags.tags(real_matrix, real_matrix.targets[f"deep-learning/{image.flavors[0]}/{other}"], SHA, DAY)
    assert second.immutable == (f"{image.flavors[0]}-{other}-2026-11-24", f"{image.flavors[0]}-{other}-0123456789ab")
    assert second.moving == (f"{image.flavors[0]}-{other}",)


def test_tags_never_collide_across_flavors_and_variants(real_matrix):
    by_repository: dict[str, list[str]] = {}
    for target in real_matrix.targets.values():
        found = tags.tags(real_matrix, target, SHA, DAY)
        by_repository.setdefault(target.repository, []).extend(found.immutable + found.moving)
    for repository, names in by_repository.items():
        assert len(names) == len(set(names)), f"{repository}: a tag names two targets: {sorted(names)}"
        assert names.count("latest") == 1, f"{repository}: `latest` on {names.count('latest')} targets"


@pytest.mark.parametrize("revision", [SHA + "-dirty", "unknown", ""])
def test_no_revision_tag_without_a_clean_commit(real_matrix, revision):
    found = tags.tags(real_matrix, real_matrix.targets["base-geo/debian"], revision, DAY)
    assert found.immutable == ("debian-2026-11-24",)


@pytest.mark.parametrize("text", ["ghcr.io/my-org", "127.0.0.1:5000", "localhost:5000/a/b", "registry.example/x_y"])
def test_registry_accepted(text):
    assert publish.check_registry(text + "/") == text


@pytest.mark.parametrize("text", ["my-org", "my-org/eo-vre", "GHCR.io/Org", "ghcr.io/my org", "ghcr.io//x", ""])
def test_registry_refused_with_the_expected_form(text):
    with pytest.raises(publish.PublishError, match=r"expected HOST\[:PORT\]\[/PREFIX\]"):
        publish.check_registry(text)


# --- against a real registry --------------------------------------------------------------------------------------

on_registry = pytest.mark.registry


def need_registry() -> None:
    if not Path(BINARY).is_file():
        pytest.skip(f"{BINARY} missing: run scripts/setup.sh (installs Debian's docker-registry)")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry (storage in tmp, removed afterwards) and the flaky proxy every test publishes through."""
    need_registry()
    served = start_registry(tmp_path_factory.mktemp("registry"))
    front = FlakyProxy(served)
    yield served, front
    front.close()
    remove(served)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=vre-test", "-c", "user.email=vre@test.invalid",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


class Repo:
    """A committed throwaway repository of tiny images on the real base-geo (their compat suite is base-geo's)."""

    def __init__(self, root: Path, base_geo: str):
        self.root, self.base_geo = root, base_geo
        self.name = f"test-publish-{uuid.uuid4().hex[:6]}"  # unique: other runs may publish at the same time
        self.images = {kind: f"{self.name}-{kind}" for kind in ("a", "b", "broken", "untested")}
        mini_repo(root, {self.images["a"]: {"apt.txt": "\n", "postBuild": "echo a1\n"},
                         self.images["b"]: {"apt.txt": "\n", "postBuild": "echo b1\n"},
                         self.images["broken"]: {"apt.txt": "\n", "start": BROKEN_START},
                         self.images["untested"]: {"apt.txt": "\n", "postBuild": "echo untested\n"}})
        git(root, "init", "-q")
        self.commit("tiny images")

    @property
    def matrix_file(self) -> Path:
        return self.root / "images" / "matrix.yaml"

    def matrix(self) -> matrix.Matrix:
        return matrix.load(self.matrix_file)

    def commit(self, message: str) -> str:
        git(self.root, "add", "-A", "environments", "images", "compat-tests")  # not .vre/, the builds' work folder
        git(self.root, "commit", "-q", "-m", message)
        return git(self.root, "rev-parse", "HEAD")

    def target(self, kind: str) -> matrix.Target:
        return self.matrix().targets[f"{self.images[kind]}/debian"]

    def build(self, *kinds: str) -> None:
        build_or_fail(self.matrix(), [f"{self.images[k]}/debian" for k in kinds], self.root / ".vre",
                      parent_image=self.base_geo)

    def vre(self, *args: str):
        """`vre COMMAND ARGS... [-- PYTEST ARGS]` on this repository's matrix, in-process (a click Result)."""
        command, rest = args[0], list(args[1:])
        split = rest.index("--") if "--" in rest else len(rest)
        return CliRunner().invoke(cli.app, [command, *rest[:split], "--matrix", str(self.matrix_file), *rest[split:]])

    def cleanup(self) -> None:
        listed = engine.docker("images", "-q", "--filter", f"reference={REAL['name']}/{self.name}-*").stdout
        ids = sorted(set(listed.decode().split()))
        if ids:
            engine.docker("image", "rm", "-f", *ids, check=False)


@pytest.fixture(scope="module")
def repo(base_geo, tmp_path_factory):
    """Tiny images built through the factory on base-geo; a and b tested (pass), broken tested (fails), untested."""
    built = Repo(tmp_path_factory.mktemp("repo"), base_geo)
    try:
        built.build("a", "b", "broken", "untested")
        for kind in ("a", "b"):
            result = built.vre("test", built.images[kind])
            assert result.exit_code == 0, result.output
        # A failing selection is a verdict too: a failure anywhere condemns the image id.
        result = built.vre("test", built.images["broken"], "--", "-m", "user")
        assert result.exit_code == 1 and "TESTS FAILED" in result.output, result.output
        yield built
    finally:
        built.cleanup()


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


@on_registry
def test_publish_then_pull_by_tag_and_by_digest(registry, repo):
    served, front = registry
    target = repo.target("a")
    image_id = engine.image_id(target.ref)
    days = {today()}
    result = repo.vre("publish", repo.images["a"], "--registry", f"{front.host}/cycle")
    days.add(today())
    assert result.exit_code == 0, result.output
    name = f"cycle/{target.repository}"
    revision = git(repo.root, "rev-parse", "HEAD")[:12]
    listed = served.tags(name)
    assert {"debian", "latest", f"debian-{revision}"} < set(listed) and len(listed) == 4
    assert any(f"debian-{day}" in listed for day in days)
    digests = {served.digest(name, tag) for tag in listed}
    assert len(digests) == 1, f"the tags of one image name several manifests: {digests}"
    digest = digests.pop()
    assert digest in result.output  # the report names what was pushed
    remote = f"{front.host}/{name}"
    try:
        for ref in (f"{remote}@{digest}", f"{remote}:latest"):
            engine.docker("image", "rm", "-f", image_id)  # every local copy: the factory's tag and the pulled names
            assert engine.image_id(target.ref) is None
            engine.docker("pull", ref, timeout=600)
            assert engine.image_id(ref) == image_id, f"{ref} is not the image that was tested"
        compat = run_compat(f"{remote}@{digest}", Workspace(repo.root / ".vre"))
        assert compat.ok, f"the compat suite failed on the pulled image: {compat.failed} failed; log {compat.log}"
    finally:
        engine.docker("tag", image_id, target.ref, check=False)  # the tested image, as the other tests expect it
        for ref in (f"{remote}@{digest}", f"{remote}:latest"):
            engine.docker("image", "rm", ref, check=False)


@on_registry
def test_publish_base_geo_and_pull_it_by_digest(registry, base_geo, real_matrix):
    """The real base-geo: published, pulled back by digest as the very same image, its GDAL tests run on the pull.
    The local eo-vre/base-geo:debian stays (other tests use it): only the registry's names are removed."""
    served, front = registry
    image_id = engine.image_id(base_geo)
    info = engine.inspect(base_geo) or {}
    # This machine's build alone: a base-geo built here earlier for another platform has no verdict in this clone.
    native = f"{info.get('Os')}/{info.get('Architecture')}"
    if not (v := verdict(Workspace.of(real_matrix.root), image_id)[1]) or not v.ok:
        # The verdict of an earlier `vre test` of this very image counts, as it does for a user.
        result = CliRunner().invoke(cli.app, ["test", "base-geo", "--flavor", "debian"])
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli.app, ["publish", "base-geo", "--flavor", "debian", "--platform", native,
                                          "--registry", f"{front.host}/geo"])
    assert result.exit_code == 0, result.output
    name = "geo/eo-vre/base-geo"
    assert {"debian", "latest"} < set(served.tags(name))
    digest = served.digest(name, "latest")
    ref = f"{front.host}/{name}@{digest}"
    try:
        engine.docker("pull", ref, timeout=1200)
        assert engine.image_id(ref) == image_id
        compat = run_compat(ref, Workspace.of(real_matrix.root), pytest_args=["-k", "gdal"])
        assert compat.ok and compat.passed > 0, f"{compat.failed} failed; log {compat.log}"
    finally:
        engine.docker("image", "rm", ref, check=False)  # the digest reference only: the image keeps its tag
    assert engine.image_id(base_geo) is not None


@on_registry
def test_untested_image_is_refused_and_nothing_is_pushed(registry, repo):
    served, front = registry
    # A passing selection proves nothing: it leaves no verdict, so the image stays untested.
    result = repo.vre("test", repo.images["untested"], "--", "-m", "user")
    assert result.exit_code == 0, result.output
    assert verdict(Workspace(repo.root / ".vre"), engine.image_id(repo.target("untested").ref))[1] is None
    # With a publishable image in the same run: the checks come before any push, so a is not pushed either.
    result = repo.vre("publish", repo.images["a"], repo.images["untested"], "--registry", f"{front.host}/untested")
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert f"{repo.target('untested').ref} (image" in output and "has no passing test on record" in output
    assert f"run `vre test {repo.images['untested']} --flavor debian`" in output
    for kind in ("a", "untested"):
        assert served.tags(f"untested/{repo.target(kind).repository}") == []


@on_registry
def test_failed_image_is_refused(registry, repo):
    served, front = registry
    target = repo.target("broken")
    recorded = verdict(Workspace(repo.root / ".vre"), engine.image_id(target.ref))[1]
    assert recorded is not None and not recorded.ok and recorded.compat["failed"] > 0
    result = repo.vre("publish", repo.images["broken"], "--registry", f"{front.host}/broken")
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert f"{target.ref} (image" in output and "failed its tests" in output
    assert f"compat {recorded.compat['failed']} failed" in output
    assert served.tags(f"broken/{target.repository}") == []


@on_registry
def test_transient_errors_are_retried(registry, repo):
    """Two manifest uploads answered 503 (the daemon retries blob uploads itself, not manifests): vre retries."""
    served, front = registry
    front.failed = 0
    front.fail_next(2, r"^PUT /v2/.+/manifests/")
    result = repo.vre("publish", repo.images["b"], "--registry", f"{front.host}/flaky")
    assert result.exit_code == 0, result.output
    assert front.failed == 2
    output = " ".join(result.output.split())
    assert "503 Service Unavailable; retrying in 2 s" in output and "retrying in 4 s" in output
    listed = served.tags(f"flaky/{repo.target('b').repository}")
    assert {"debian", "latest"} < set(listed) and len(listed) == 4


@pytest.fixture
def locked_registry(tmp_path):
    """A registry that takes user vre, password `secret`, only (htpasswd with bcrypt, the only hash it reads)."""
    need_registry()
    bcrypt = pytest.importorskip("bcrypt", reason="bcrypt missing: pip install -e '.[test]'")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("vre:" + bcrypt.hashpw(b"secret", bcrypt.gensalt()).decode() + "\n")
    served = start_registry(tmp_path / "registry", htpasswd=htpasswd)
    yield served
    remove(served)


def docker_config(folder: Path, host: str, password: str | None) -> Path:
    folder.mkdir()
    auths = {host: {"auth": base64.b64encode(f"vre:{password}".encode()).decode()}} if password else {}
    (folder / "config.json").write_text(json.dumps({"auths": auths}))
    return folder


@on_registry
@pytest.mark.parametrize("password", [None, "wrong"], ids=["no-credentials", "wrong-password"])
def test_authentication_failure_fails_fast(locked_registry, repo, tmp_path, monkeypatch, password):
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "docker", locked_registry.host, password)))
    result = repo.vre("publish", repo.images["a"], "--registry", f"{locked_registry.host}/locked")
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert f"registry {locked_registry.host}/locked refused our credentials" in output
    assert f"docker login {locked_registry.host}" in output
    assert "retrying" not in output
    # The same checks pass once logged in: the refusal was about the credentials.
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "login", locked_registry.host, "secret")))
    plans = publish.plan(repo.matrix(), [repo.target("a")], f"{locked_registry.host}/locked")
    assert [p.image_id for p in plans] == [engine.image_id(repo.target("a").ref)]


@on_registry
def test_registry_dying_mid_publish_moves_no_moving_tag(registry, repo):
    """a and b published; then a rebuilt from a new commit, and the registry killed right after a's first immutable
    tag is in: b's push fails, the run stops, and no moving tag of either image has moved. Moves a's local tag."""
    served, front = registry
    prefix = f"{front.host}/dying"
    fast = publish.Retry(attempts=2, delay=0.1)
    m = repo.matrix()
    targets = [repo.target("a"), repo.target("b")]
    publish.push(publish.plan(m, targets, prefix, retry=fast), prefix, retry=fast)
    names = {t.key: f"dying/{t.repository}" for t in targets}
    before = {(key, tag): served.digest(name, tag) for key, name in names.items() for tag in ("debian", "latest")}
    assert all(before.values())

    (repo.root / "environments" / "debian" / repo.images["a"] / "postBuild").write_text("echo a2\n")
    repo.commit("a2")
    repo.build("a")
    result = repo.vre("test", repo.images["a"])
    assert result.exit_code == 0, result.output
    plans = publish.plan(repo.matrix(), [repo.target("a"), repo.target("b")], prefix, retry=fast)
    seen: list[publish.Pushed] = []

    def kill_after_first(pushed: publish.Pushed) -> None:
        seen.append(pushed)
        if len(seen) == 1:
            served.stop()

    try:
        with pytest.raises(publish.PublishError) as failure:
            publish.push(plans, prefix, retry=fast, progress=Progress(pushed=kill_after_first))
    finally:
        served.start()
    assert failure.value.pushed == seen and len(seen) == 1 and not seen[0].moving
    assert seen[0].key == targets[0].key
    message = str(failure.value)
    assert "pushed before the failure" in message and seen[0].ref in message and "no moving tag was pushed" in message
    assert {(key, tag): served.digest(name, tag) for key, name in names.items()
            for tag in ("debian", "latest")} == before
    pushed_tag = seen[0].ref.rsplit(":", 1)[1]
    assert served.digest(names[targets[0].key], pushed_tag) == seen[0].digest
