"""Push tested images to an OCI registry with the Docker CLI (docker tag, push, manifest inspect/create/push).

A run checks everything before its first push: each image is built, the test verdict on its very image id passed
(`vre test` keeps it, see vre.verify.verdicts.record), the registry answers and takes our credentials, and each
immutable tag is free or already names that image. Then it pushes every image's immutable tags, and only once all
of them are in, the moving tags. A failure stops the run and says exactly what was pushed: a moving tag never moves
to an image whose siblings of the same run are missing, and an immutable tag never moves at all.

An image built for several platforms (`vre build --platform linux/arm64` beside the native build) is published as one
multi-platform index under each tag, each platform's image under the same tag suffixed with its arch (`debian-arm64`):
a pull of the tag or of the index's digest gets each machine its own platform's image.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, UTC
from functools import cache
from typing import Any

from vre import engine
from vre.errors import USAGE, VreError
from vre.matrix import Matrix, Target, arch
from vre.progress import Progress
from vre.release import tags
from vre.verify import verdicts
from vre.workspace import Workspace

# HOST[:PORT][/PREFIX]: a host Docker cannot mistake for a Docker Hub account (a dot, a port, or localhost).
REGISTRY = re.compile(r"^(?P<host>[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?)(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$")
AUTH = re.compile(r"unauthorized|\bdenied:|access to the resource is denied|no basic auth credentials|"
                  r"authentication required|\b40[13]\b", re.I)
TRANSIENT = re.compile(r"connection refused|connection reset|broken pipe|\bEOF\b|timeout|timed out|"
                       r"temporarily unavailable|service unavailable|bad gateway|internal server error|"
                       r"too many requests|\b(?:429|50[0-4])\b", re.I)
NO_MANIFEST = re.compile(r"no such manifest|manifest unknown", re.I)
DIGEST = re.compile(r"digest: (?P<digest>sha256:[0-9a-f]{64}) size: \d+")
INDEX_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")  # what `docker manifest push` prints last
INSPECT_TIMEOUT = 120.0
PUSH_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Pushed:
    key: str  # the matrix target, e.g. base-geo/debian
    ref: str  # registry/repository:tag
    digest: str  # the manifest digest the tag names
    moving: bool
    platforms: tuple[str, ...] = ()  # the platforms of the index the tag names; () for one platform's image


class PublishError(VreError):
    def __init__(self, message: str, pushed: list[Pushed] | None = None, exit_code: int | None = None) -> None:
        super().__init__(message, exit_code)
        self.pushed = list(pushed or [])


class AuthError(PublishError):
    """The registry refused our credentials: retrying cannot help."""


@dataclass
class Plan:
    """One image to publish: the tested image id (one per platform), where it goes, and which tags."""

    target: Target
    image_id: str  # the native platform's (or the only) image
    repository: str  # <registry>/<matrix name>/<image>
    immutable: list[str]
    moving: list[str]
    kept: dict[str, str] = field(default_factory=dict)  # immutable tags naming another image (left alone): what
    images: dict[str, str] = field(default_factory=dict)  # platform -> tested image id; several: an index

    @property
    def identity(self) -> str:
        """What each of its tags names once pushed, as remote_image reports it."""
        return index_identity(self.images) if len(self.images) > 1 else self.image_id


def index_identity(images: dict[str, str]) -> str:
    """An index by its platforms' image ids (config digests): `linux/amd64=sha256:…, linux/arm64=sha256:…`."""
    return ", ".join(f"{platform}={image_id}" for platform, image_id in sorted(images.items()))


@dataclass(frozen=True)
class Retry:
    attempts: int = 5
    delay: float = 2.0  # seconds before the first retry, doubled before each next one


def check_registry(text: str) -> str:
    registry = text.strip().rstrip("/")
    match = REGISTRY.match(registry)
    if not match or not ("." in match["host"] or ":" in match["host"] or match["host"] == "localhost"):
        raise PublishError(f"--registry {text!r}: expected HOST[:PORT][/PREFIX] in lowercase, the host with a dot, "
                           "a port or localhost (Docker reads a bare name as a Docker Hub account), e.g. "
                           "ghcr.io/my-org or 127.0.0.1:5000", exit_code=USAGE)
    return registry


def _host(registry: str) -> str:
    return registry.split("/", 1)[0]


@cache
def _insecure(host: str) -> bool:
    """Whether the engine speaks plain HTTP to `host` (its insecure registries; 127.0.0.0/8 by default).
    `docker manifest inspect` must then be told so, or it answers "no such manifest" for any tag."""
    config = json.loads(engine.docker("info", "--format", "{{json .RegistryConfig}}").stdout)
    index = (config.get("IndexConfigs") or {}).get(host)
    if index is not None:
        return not index.get("Secure", True)
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host.split(":")[0]))
    except OSError:
        return False
    return any(address in ipaddress.ip_network(cidr) for cidr in config.get("InsecureRegistryCIDRs") or ())


def _docker(args: tuple[str, ...], registry: str, retry: Retry, progress: Progress, timeout: float,
            answer: re.Pattern[str] | None = None) -> tuple[int, str, str]:
    """Run a docker command that talks to the registry: (exit code, stdout, stderr). Transient errors (connection
    refused or reset, 5xx, timeouts) are retried with exponential backoff; an authentication error fails at once;
    a failure whose stderr matches `answer` is the registry's answer, returned as is."""
    what = "docker " + " ".join(arg for arg in args if not arg.startswith("-"))
    attempt, delay = 1, retry.delay
    while True:
        try:
            result = engine.docker(*args, check=False, timeout=timeout)
            out, error = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace").strip()
            if result.returncode == 0 or (answer and answer.search(error)):
                return result.returncode, out, error
        except subprocess.TimeoutExpired:
            error = f"no answer within {timeout:.0f} s (timeout)"
        if AUTH.search(error):
            raise AuthError(f"{what}: registry {registry} refused our credentials: {error}\n"
                            f"  log in with `docker login {_host(registry)}` as an account (or with a token) allowed "
                            f"to push to {registry}, then run vre publish again")
        if not TRANSIENT.search(error) or attempt >= retry.attempts:
            tries = f" (attempt {attempt} of {retry.attempts})" if attempt > 1 else ""
            raise PublishError(f"{what}: {error}{tries}")
        progress.note(f"{what}: {error}; retrying in {delay:g} s (attempt {attempt} of {retry.attempts} failed)")
        time.sleep(delay)
        attempt, delay = attempt + 1, delay * 2


def remote_image(ref: str, registry: str, retry: Retry = Retry(), progress: Progress = Progress()) -> str | None:
    """What a registry tag names: the image id (config digest) of a single-platform image, a description of a
    multi-platform index, or None when the tag does not exist."""
    args = ("manifest", "inspect", "-v", *(("--insecure",) if _insecure(_host(ref)) else ()), ref)
    code, out, _ = _docker(args, registry, retry, progress, INSPECT_TIMEOUT, answer=NO_MANIFEST)
    if code != 0:
        return None
    found = json.loads(out)
    if isinstance(found, list):
        return index_identity({_platform(entry.get("Descriptor", {}).get("platform", {})): _config(entry)
                               for entry in found})
    return _config(found)


def _config(found: dict[str, Any]) -> str:
    manifest = found.get("SchemaV2Manifest") or found.get("OCIManifest") or {}
    return str(manifest.get("config", {}).get("digest", "an unknown manifest"))


def _platform(platform: dict[str, str]) -> str:
    return f"{platform.get('os', '?')}/{platform.get('architecture', '?')}"


def platform_images(target: Target) -> dict[str, str]:
    """platform -> the id of each local image of the target: the native build's tag (its own platform) and each
    `--platform` build's (tag ending in the arch)."""
    found: dict[str, str] = {}
    for platform in ("", *target.platforms):
        info = engine.inspect(replace(target, platform=platform).ref)
        if info:
            own = _platform({"os": info.get("Os", ""), "architecture": info.get("Architecture", "")})
            if own in target.platforms:
                found.setdefault(own, str(info["Id"]))
    return found


def _selector(target: Target) -> str:
    """The command-line words that select `target`."""
    return (f"{target.image} --flavor {target.flavor}" + (f" --variant {target.variant}" if target.variant else "")
            + (f" --platform {target.platform}" if target.platform else ""))


def _refusal(target: Target, image_id: str, workspace: Workspace) -> str | None:
    """Why `target`'s current image may not be published, None when it may."""
    short = image_id.removeprefix("sha256:")[:12]
    path, verdict = verdicts.verdict(workspace, image_id)
    if verdict is None:
        return (f"{target.ref} (image {short}) has no passing test on record ({path} is missing): "
                f"run `vre test {_selector(target)}`")
    if not verdict.ok:
        counts = ", ".join(f"{name} {r['failed']} failed of {r['passed'] + r['failed']}"
                           for name, r in (("compat", verdict.compat), ("browser", verdict.browser)) if r)
        return (f"{target.ref} (image {short}) failed its tests on {verdict.tested_at} ({counts}; log "
                f"{verdict.compat['log']}): fix it, rebuild, and run `vre test {_selector(target)}`")
    return None


def _as_built(target: Target, platform: str, image_id: str) -> Target:
    """The target as the local image of `platform` was built: natively (its plain tag) or with --platform."""
    return target if engine.image_id(target.ref) == image_id else replace(target, platform=platform)


def _chosen(target: Target, found: dict[str, str], platforms: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """The local images of the platforms asked for (all those built when none is), and why any asked for is missing."""
    if not platforms:
        return found, []
    whys = [f"{target.ref}: no platform {p} in the matrix (expected one of: {', '.join(target.platforms)})"
            if p not in target.platforms else
            f"{target.ref}: not built for {p}: run `vre build {_selector(replace(target, platform=p))} --test`"
            for p in platforms if p not in found]
    return {p: one for p, one in found.items() if p in platforms}, whys


def plan(matrix: Matrix, targets: list[Target], registry: str, *, workspace: Workspace | None = None,
         day: date | None = None, retry: Retry = Retry(), progress: Progress = Progress(),
         platforms: tuple[str, ...] = ()) -> list[Plan]:
    """Every check, nothing pushed: the images to publish with their tags, or a PublishError naming every refusal.
    Each target goes out with the images of `platforms`, or with every platform's image built here when it is ()."""
    registry = check_registry(registry)
    engine.ping()
    workspace = workspace or Workspace.of(matrix.root)
    day = day or datetime.now(UTC).date()
    refusals: list[str] = []
    plans: list[Plan] = []
    for target in targets:
        images, missing = _chosen(target, platform_images(target), platforms)
        if missing:
            refusals += missing
            continue
        native = engine.image_id(target.ref)
        image_id = native if native in images.values() else next(iter(images.values()), None)
        info = engine.inspect(image_id) if image_id else None
        if not image_id or not info:
            refusals.append(f"{target.ref} is not built: run `vre build {_selector(target)} --test`")
            continue
        whys = {platform: _refusal(_as_built(target, platform, one), one, workspace)
                for platform, one in sorted(images.items())}
        if any(whys.values()):
            refusals += [why for why in whys.values() if why]
            if not all(whys.values()):  # e.g. an old build for another platform still on this machine
                tested = " ".join(f"--platform {p}" for p, why in whys.items() if not why)
                refusals.append(f"{target.ref}: or publish only its tested platforms: "
                                f"`vre publish {_selector(target)} {tested} --registry {registry}`")
            continue
        revisions = {platform: engine.labels(engine.inspect(one)).get(tags.REVISION_LABEL, "")
                     for platform, one in images.items()}
        if len(set(revisions.values())) > 1:
            refusals.append(f"{target.ref}: its platforms' images were built from different trees ("
                            + ", ".join(f"{p}: {r or 'unknown'}" for p, r in sorted(revisions.items()))
                            + "): rebuild them from one commit")
            continue
        revision = engine.labels(info).get(tags.REVISION_LABEL, "")
        found = tags.tags(matrix, target, revision, day)
        if not tags.COMMIT.match(revision):
            progress.note(f"{target.ref}: built from {revision or 'an unknown tree'}, not a clean commit: "
                          "no revision tag")
        plans.append(Plan(target=target, image_id=image_id, repository=f"{registry}/{target.repository}",
                          immutable=list(found.immutable), moving=list(found.moving), images=images))
    if refusals:
        raise PublishError("nothing published:\n  " + "\n  ".join(refusals))
    for p in plans:  # the registry's side: reachable, our credentials, immutable tags that must not move
        for tag in list(p.immutable):
            named = remote_image(f"{p.repository}:{tag}", registry, retry, progress)
            if named is not None and named != p.identity:
                p.immutable.remove(tag)
                p.kept[tag] = named
                progress.note(f"{p.repository}:{tag} already names {named}; an immutable tag never moves: left as is")
        if not p.immutable:
            refusals.append(f"{p.target.ref}: its immutable tags ({', '.join(p.kept)}) already name other images: "
                            "commit, rebuild and test it to publish it under a new revision tag")
    if refusals:
        raise PublishError("nothing published:\n  " + "\n  ".join(refusals))
    return plans


def _push_index(pushed: list[Pushed], plan: Plan, tag: str, moving: bool, registry: str, retry: Retry,
                progress: Progress) -> None:
    """Push each platform's image under `tag`-<arch>, then the index of them under `tag` (its digest pulls each
    platform's image on a machine of that platform), appending each push to `pushed` as it lands."""
    mine = []
    for platform, image_id in sorted(plan.images.items()):
        mine.append(_push_tag(plan, f"{tag}-{arch(platform)}", moving, registry, retry, progress, image_id))
        pushed.append(mine[-1])
        progress.pushed(mine[-1])
    ref = f"{plan.repository}:{tag}"
    insecure = ("--insecure",) if _insecure(_host(ref)) else ()
    # The index is made from the manifests just pushed (by digest: a tag may move meanwhile), kept nowhere locally.
    sources = [f"{plan.repository}@{p.digest}" for p in mine]
    _docker(("manifest", "create", "--amend", *insecure, ref, *sources), registry, retry, progress, INSPECT_TIMEOUT)
    _, out, _ = _docker(("manifest", "push", "--purge", *insecure, ref), registry, retry, progress, PUSH_TIMEOUT)
    digest = out.strip().splitlines()[-1] if out.strip() else ""
    if not INDEX_DIGEST.match(digest):
        raise PublishError(f"docker manifest push {ref} printed no digest:\n{out[-1000:]}")
    pushed.append(Pushed(key=plan.target.key, ref=ref, digest=digest, moving=moving,
                         platforms=tuple(sorted(plan.images))))
    progress.pushed(pushed[-1])


def _push_tag(plan: Plan, tag: str, moving: bool, registry: str, retry: Retry, progress: Progress,
              image_id: str = "") -> Pushed:
    """Push one tag of one image.

    One `docker push` per tag, never --all-tags: a push uploads the blobs first and PUTs the manifest under the tag
    last, and the registry accepts that manifest only if every blob it names is there, so a tag appears whole or not
    at all; an interrupted push leaves only unreferenced blobs, which the registry's garbage collection removes.
    One tag per push also lets the run order them (every immutable tag before any moving one), and after the first
    tag of an image the next ones only re-PUT the same manifest (the blobs already exist), so they are cheap.
    """
    ref = f"{plan.repository}:{tag}"
    # The tested image id, not the local tag: a build may have moved that tag since the checks.
    engine.docker("tag", image_id or plan.image_id, ref)
    try:
        _, out, _ = _docker(("push", ref), registry, retry, progress, PUSH_TIMEOUT)
    finally:
        engine.docker("image", "rm", ref, check=False)  # only this alias: the image keeps its own tags
    match = DIGEST.search(out)
    if not match:
        raise PublishError(f"docker push {ref} printed no digest:\n{out[-1000:]}")
    return Pushed(key=plan.target.key, ref=ref, digest=match["digest"], moving=moving)


def describe(pushed: list[Pushed]) -> str:
    """What a stopped run leaves in the registry."""
    if not pushed:
        return "nothing was pushed"
    lines = [f"  {p.ref} {p.digest}" for p in pushed]
    return ("pushed before the failure:\n" + "\n".join(lines)
            + ("" if any(p.moving for p in pushed) else "\nno moving tag was pushed"))


def push(plans: list[Plan], registry: str, *, retry: Retry = Retry(), progress: Progress = Progress()) -> list[Pushed]:
    """Every image's immutable tags, then every image's moving tags; stops at the first failure."""
    pushed: list[Pushed] = []
    try:
        for moving in (False, True):
            for p in plans:
                for tag in p.moving if moving else p.immutable:
                    if len(p.images) > 1:
                        _push_index(pushed, p, tag, moving, registry, retry, progress)
                        continue
                    pushed.append(_push_tag(p, tag, moving, registry, retry, progress))
                    progress.pushed(pushed[-1])
    except PublishError as e:
        raise type(e)(f"{e}\n{describe(pushed)}", pushed) from None
    except engine.EngineError as e:
        raise PublishError(f"{e}\n{describe(pushed)}", pushed) from None
    return pushed
