"""``make images``: the agent and controller images built here, without Docker and without a registry.

The images are built from ``Dockerfile.agent`` and ``Dockerfile.controller`` themselves, by the
distro's ``buildah`` (daemonless; ``--isolation chroot`` because no container runtime of its own is
needed for a ``RUN``), with ``--build-arg BASE_IMAGE=`` pointing at a base made locally with
debootstrap (:mod:`mbcas.local.imagebase`). That build argument is the only difference from the
shipped images: same files, same stages, same Python minor version. ``--layers`` lets the
controller reuse the agent's builder stage (identical instructions).

Three more images serve the real node: the burner that test pods run (the agent image with
``python -m mbcas.local.burner`` as its entrypoint, so it carries the very same package), and the
pause image of the pod sandboxes.

Each image is exported as a docker-archive tar into ``$MBCAS_CACHE/images/`` (and the three are
merged into one bundle archive that stores their shared layers once, for the import) and tagged
``localhost/mbcas/<name>:<key>``, where the key hashes everything the image is made of (the
Dockerfile, ``pyproject.toml``, ``README.md`` and ``src/`` as ``.dockerignore`` admits them, and the
base). An unchanged tree reuses the archives; :meth:`ImageSet.archives` are what the real node's
containerd imports. buildah keeps its storage under the cache too; what it creates in fixed host
locations (``/var/lib/containers``, ``/run/containers``, ``/etc/cni``) is removed afterwards if it
was not there before.

Command line: ``python -m mbcas.local.images [--import-into CLUSTER]`` (prints each image's
reference and archive; ``--import-into`` also imports them into the containerd of that real-node
cluster, e.g. ``node`` for ``make node``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mbcas.local.build import cache_dir, kubernetes_source
from mbcas.local.imagebase import (
    BASE_SUITE,
    PYTHON_MINOR,
    ImageBuildError,
    ImageFile,
    build_pause,
    make_base_rootfs,
    merge_archives,
    run_tool,
    write_image_archive,
)

__all__ = ["PAUSE_IMAGE", "REGISTRY", "Image", "ImageBuildError", "ImageSet", "ensure_images", "ensure_pause"]

REGISTRY = "localhost/mbcas"
PAUSE_VERSION = "3.10.1"
PAUSE_IMAGE = f"{REGISTRY}/pause:{PAUSE_VERSION}"
BASE_IMAGE = f"{REGISTRY}/base:{BASE_SUITE}-py{PYTHON_MINOR}"
_HOST_TRACES = ("/var/lib/containers", "/run/containers", "/etc/cni")
_CONTEXT = ("pyproject.toml", "README.md", "src")


def _log(msg: str) -> None:
    print(f"[mbcas images] {msg}", file=sys.stderr, flush=True)


def images_dir() -> Path:
    return cache_dir() / "images"


@dataclass(frozen=True)
class Image:
    """A built image: its reference and the docker-archive holding it."""

    ref: str
    archive: Path

    @property
    def repository(self) -> str:
        return self.ref.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.ref.rsplit(":", 1)[1]


@dataclass(frozen=True)
class ImageSet:
    """The images the real node runs."""

    agent: Image
    controller: Image
    burner: Image
    pause: Image
    bundle: Path
    """One archive with the agent, controller and burner images (shared layers stored once)."""

    def archives(self) -> list[Path]:
        """What the node imports (the pause image is imported when the node starts)."""
        return [self.bundle]


@contextlib.contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """One image build at a time on this machine (they share buildah's storage)."""
    images_dir().mkdir(parents=True, exist_ok=True)
    fd = os.open(images_dir() / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _no_host_traces() -> Iterator[None]:
    """Remove the fixed host paths buildah creates, unless they existed before."""
    before = {p: os.path.lexists(p) for p in _HOST_TRACES}
    try:
        yield
    finally:
        for path, existed in before.items():
            if not existed and os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)


class Buildah:
    """The ``buildah`` command with storage of its own under the cache."""

    def __init__(self, root: Path) -> None:
        if shutil.which("buildah") is None:
            raise ImageBuildError("'buildah' is not installed (the distro package 'buildah')")
        self.root = root
        self.base_args = [
            "buildah", "--root", str(root / "storage"), "--runroot", str(root / "run"),
            "--storage-driver", "overlay",
        ]  # fmt: skip

    def __call__(self, *args: str, what: str, cwd: Path | None = None) -> str:
        return run_tool([*self.base_args, *args], what, cwd=cwd).strip()

    def has_image(self, ref: str) -> bool:
        try:
            self("inspect", "--type", "image", "--format", "{{.FromImageID}}", ref, what="inspect")
        except ImageBuildError:
            return False
        return True

    def image_id(self, ref: str) -> str:
        return self("inspect", "--type", "image", "--format", "{{.FromImageID}}", ref, what=f"inspect {ref}")

    def export(self, ref: str, archive: Path) -> Path:
        tmp = archive.with_name(archive.name + ".tmp")
        tmp.unlink(missing_ok=True)
        self("push", "--quiet", ref, f"docker-archive:{tmp}:{ref}", what=f"export {ref}")
        os.replace(tmp, archive)
        return archive


def _context_files(root: Path) -> list[Path]:
    """The files ``.dockerignore`` lets into the build context (pyproject, README, src/ minus caches)."""
    files: list[Path] = []
    for name in _CONTEXT:
        path = root / name
        if path.is_file():
            files.append(path)
            continue
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(root).as_posix()
            if (
                file.is_file()
                and "__pycache__" not in rel
                and ".egg-info" not in rel
                and not rel.endswith(".pyc")
            ):
                files.append(file)
    return files


def context_key(root: Path, dockerfile: Path, base_id: str) -> str:
    """A short hash of what an image is made of."""
    digest = hashlib.sha256(base_id.encode())
    for file in [dockerfile, *_context_files(root)]:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _ensure_base(buildah: Buildah, log: Callable[[str], None]) -> str:
    if buildah.has_image(BASE_IMAGE):
        return buildah.image_id(BASE_IMAGE)
    start = time.monotonic()
    work = images_dir() / "base-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        rootfs = work / "rootfs"
        make_base_rootfs(rootfs, log)
        tarball = work / "rootfs.tar"
        with tarfile.open(tarball, "w") as tar:
            tar.add(rootfs, arcname=".")
        container = buildah("from", "scratch", what="buildah from scratch")
        try:
            buildah("add", container, str(tarball), "/", what="add rootfs")
            buildah(
                "config",
                "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env", "LANG=C.UTF-8",
                "--cmd", "python3",
                "--label", f"org.opencontainers.image.description=Debian {BASE_SUITE}, python3, debootstrap",
                container,
                what="configure base",
            )  # fmt: skip
            buildah("commit", "--rm", container, BASE_IMAGE, what="commit base")
        except BaseException:
            with contextlib.suppress(ImageBuildError):
                buildah("rm", container, what="rm")
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"base image {BASE_IMAGE} made in {time.monotonic() - start:.0f}s")
    return buildah.image_id(BASE_IMAGE)


def _build(
    buildah: Buildah, root: Path, name: str, dockerfile: str, *, base_id: str, log: Callable[[str], None]
) -> Image:
    key = context_key(root, root / dockerfile, base_id)
    image = Image(f"{REGISTRY}/{name}:{key}", images_dir() / f"{name}-{key}.tar")
    if image.archive.is_file():
        return image
    start = time.monotonic()
    log(f"building {image.ref} from {dockerfile} (BASE_IMAGE={BASE_IMAGE})")
    buildah(
        "bud", "--isolation", "chroot", "--network", "host", "--layers", "--quiet",
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-f", dockerfile, "-t", image.ref, ".",
        what=f"build {dockerfile}", cwd=root,
    )  # fmt: skip
    buildah.export(image.ref, image.archive)
    log(f"{image.ref} built and exported in {time.monotonic() - start:.0f}s")
    return image


def _burner(buildah: Buildah, agent: Image, log: Callable[[str], None]) -> Image:
    image = Image(f"{REGISTRY}/mbcas-burner:{agent.tag}", images_dir() / f"mbcas-burner-{agent.tag}.tar")
    if image.archive.is_file():
        return image
    container = buildah("from", "--pull-never", agent.ref, what="buildah from agent")
    try:
        buildah(
            "config", "--entrypoint", '["python", "-m", "mbcas.local.burner"]',
            "--label", "org.opencontainers.image.title=mbcas-burner", container, what="configure burner",
        )  # fmt: skip
        buildah("commit", "--rm", container, image.ref, what="commit burner")
    except BaseException:
        with contextlib.suppress(ImageBuildError):
            buildah("rm", container, what="rm")
        raise
    log(f"{image.ref}: the agent image running python -m mbcas.local.burner")
    return Image(image.ref, buildah.export(image.ref, image.archive))


def _prune(buildah: Buildah, keep: set[Image], log: Callable[[str], None]) -> None:
    """Drop the archives and buildah images of earlier builds (each is ~400 MB)."""
    current = {image.archive for image in keep}
    refs = {image.ref for image in keep if image.ref != "bundle"}
    removed = 0
    for archive in images_dir().glob("mbcas-*.tar"):
        if archive not in current:
            archive.unlink(missing_ok=True)
            removed += 1
    listing = buildah("images", "--format", "{{.Name}}:{{.Tag}}", what="list images")
    stale = [r for r in listing.split() if r.startswith(f"{REGISTRY}/mbcas-") and r not in refs]
    if stale:
        buildah("rmi", *stale, what="remove old images")
    if removed or stale:
        buildah("rmi", "--prune", what="prune dangling layers")
        log(f"pruned {removed} old archive(s) and {len(stale)} old image(s)")


def ensure_pause(log: Callable[[str], None] = _log) -> Image:
    """The pod sandbox image, built once from the Kubernetes module's ``pause.c``."""
    archive = images_dir() / f"pause-{PAUSE_VERSION}.tar"
    image = Image(PAUSE_IMAGE, archive)
    if archive.is_file():
        return image
    with _exclusive("pause"):
        if archive.is_file():
            return image
        binary = build_pause(kubernetes_source(), images_dir() / "pause-build" / "pause", PAUSE_VERSION)
        write_image_archive(
            archive,
            PAUSE_IMAGE,
            {"pause": ImageFile(binary.read_bytes(), 0o755)},
            {"Entrypoint": ["/pause"], "User": "65535:65535"},
        )
        shutil.rmtree(binary.parent, ignore_errors=True)
        log(f"{PAUSE_IMAGE} built from the kubernetes module's pause.c")
    return image


def repo_root() -> Path:
    """The checkout holding the Dockerfiles (editable install), else the current directory."""
    for candidate in (Path(__file__).resolve().parents[3], Path.cwd()):
        if (candidate / "Dockerfile.agent").is_file() and (candidate / "src" / "mbcas").is_dir():
            return candidate
    raise ImageBuildError("no Dockerfile.agent here: run from the MBCAS checkout")


def ensure_images(root: Path | None = None, log: Callable[[str], None] = _log) -> ImageSet:
    """Build (or reuse) the agent, controller, burner and pause images; return them."""
    root = root or repo_root()
    begin = time.monotonic()
    pause = ensure_pause(log)
    with _exclusive("buildah"), _no_host_traces():
        buildah = Buildah(images_dir() / "buildah")
        base_id = _ensure_base(buildah, log)
        agent = _build(buildah, root, "mbcas-agent", "Dockerfile.agent", base_id=base_id, log=log)
        controller = _build(
            buildah, root, "mbcas-controller", "Dockerfile.controller", base_id=base_id, log=log
        )
        burner = _burner(buildah, agent, log)
        bundle = images_dir() / f"mbcas-bundle-{agent.tag}-{controller.tag}.tar"
        if not bundle.is_file():
            merge_archives([agent.archive, controller.archive, burner.archive], bundle)
        _prune(buildah, {agent, controller, burner, Image("bundle", bundle)}, log)
    log(f"images ready in {time.monotonic() - begin:.0f}s")
    return ImageSet(agent=agent, controller=controller, burner=burner, pause=pause, bundle=bundle)


def _import_into(cluster: str, images: ImageSet) -> None:
    import json

    from mbcas.local.containerd import Containerd
    from mbcas.local.detached import state_dir

    try:
        state = json.loads((state_dir(cluster) / "state.json").read_text())
        socket = Path(state["real_node"]["containerd_socket"])
    except (OSError, ValueError, KeyError):
        raise ImageBuildError(f"no real-node cluster {cluster!r} (start one with make node)") from None
    containerd = Containerd(socket.parent, sandbox_image="", cni_conf_dir=Path(), cni_bin_dir=Path())
    begin = time.monotonic()
    for archive in images.archives():
        containerd.import_image(archive)
    _log(f"imported agent, controller and burner into {cluster!r} in {time.monotonic() - begin:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mbcas.local.images",
        description="Build the MBCAS images from the Dockerfiles with buildah on a debootstrapped base.",
    )
    parser.add_argument(
        "--import-into", metavar="CLUSTER", default=None, help="import into that real-node cluster"
    )
    args = parser.parse_args(argv)
    try:
        images = ensure_images()
        if args.import_into:
            _import_into(args.import_into, images)
    except (ImageBuildError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for image in (images.agent, images.controller, images.burner, images.pause):
        print(f"{image.ref}\t{image.archive}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
