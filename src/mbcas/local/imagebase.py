"""Base material for locally built images: a Debian base made with debootstrap, and image archives.

No registry serves images here, so the agent and controller images cannot start ``FROM
python:3.11.14-slim-bookworm``. :func:`make_base_rootfs` makes the closest thing from the distro's
package mirror instead: Debian 12 (bookworm, whose ``python3`` is 3.11, the shipped base's minor
version) with ``python3``, ``python3-venv`` and ``python-is-python3``, trimmed of apt lists,
caches and documentation. The mirror is the one the host's own apt sources name. If the host
trusts extra certificate authorities (``/usr/local/share/ca-certificates``, e.g. a TLS-inspecting
proxy in front of PyPI), the base trusts them too, so ``pip install`` inside the build works.

:func:`write_image_archive` writes a docker-archive tar (``manifest.json``, an image config and one
layer) from files given in memory; the node's pause image is made this way from the ``pause``
binary, compiled with ``gcc -static`` from ``build/pause/linux/pause.c`` in the Kubernetes module
(:func:`build_pause`). ``ctr images import`` reads such archives directly.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_PACKAGES",
    "BASE_SUITE",
    "PYTHON_MINOR",
    "ImageBuildError",
    "ImageFile",
    "apt_mirror",
    "build_pause",
    "make_base_rootfs",
    "merge_archives",
    "run_tool",
    "write_image_archive",
]

BASE_SUITE = "bookworm"
PYTHON_MINOR = "3.11"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
_TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info")
_EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")


class ImageBuildError(RuntimeError):
    """An image or its base could not be made; the message carries the failing tool's output."""


def run_tool(argv: list[str], what: str, timeout: float = 1800.0, cwd: Path | None = None) -> str:
    if shutil.which(argv[0]) is None:
        raise ImageBuildError(f"{what}: '{argv[0]}' is not installed")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-30:])
        raise ImageBuildError(
            f"{what}: '{' '.join(argv[:3])} ...' failed with exit {proc.returncode}:\n{tail}"
        )
    return proc.stdout


def _sources_entries(text: str, deb822: bool) -> list[tuple[str, list[str]]]:
    """(URI, suites) pairs from an apt sources file (one-line or deb822 format)."""
    entries: list[tuple[str, list[str]]] = []
    if not deb822:
        for line in text.splitlines():
            parts = [p for p in line.split("#", 1)[0].split() if not p.startswith("[")]
            if len(parts) >= 3 and parts[0] == "deb":
                entries.append((parts[1], [parts[2]]))
        return entries
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "#")):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("uris"):
            entries.append((fields["uris"].split()[0], fields.get("suites", "").split()))
    return entries


def apt_mirror(root: Path = Path("/etc/apt")) -> str:
    """The Debian archive URI the host's apt sources use (not the security archive)."""
    files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*"))]
    for file in files:
        try:
            text = file.read_text()
        except OSError:
            continue
        for uri, suites in _sources_entries(text, deb822=file.suffix == ".sources"):
            if "security" in uri:
                continue
            if any(s.split("-")[0] in ("bookworm", "trixie", "bullseye", "stable", "sid") for s in suites):
                return uri.rstrip("/")
    raise ImageBuildError(
        f"no Debian archive in the host's apt sources ({root}): the local base image is made with "
        "debootstrap from the distro's mirror, so this needs a Debian host"
    )


def make_base_rootfs(target: Path, log: Callable[[str], None]) -> None:
    """debootstrap Debian ``BASE_SUITE`` with Python into ``target`` (which must not exist)."""
    if target.exists():
        raise ImageBuildError(f"{target} exists; remove it first")
    mirror = apt_mirror()
    log(f"debootstrap {BASE_SUITE} (python3 {PYTHON_MINOR}) from the host's apt mirror; takes 2-3 min")
    try:
        run_tool(
            [
                "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                BASE_SUITE, str(target), mirror,
            ],
            "debootstrap",
        )  # fmt: skip
    finally:
        # debootstrap mounts /proc and /sys inside the target while it runs; never leave them.
        from mbcas.local.hostguard import unmount_under

        unmount_under([target], log)
    version = run_tool(
        ["chroot", str(target), "python3", "-c", "import sys; print(sys.version)"], "python check"
    )
    if not version.startswith(PYTHON_MINOR + "."):
        raise ImageBuildError(f"the base's python3 is {version.split()[0]}, not {PYTHON_MINOR}")
    extra = sorted(_EXTRA_CA_DIR.glob("*.crt")) if _EXTRA_CA_DIR.is_dir() else []
    if extra:
        dest = target / _EXTRA_CA_DIR.relative_to("/")
        dest.mkdir(parents=True, exist_ok=True)
        for cert in extra:
            shutil.copy2(cert, dest / cert.name)
        run_tool(["chroot", str(target), "update-ca-certificates"], "update-ca-certificates")
        log(f"base trusts the host's {len(extra)} extra CA certificate(s) (for pip behind a TLS proxy)")
    for rel in _TRIM:
        path = target / rel
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    for rel in ("etc/resolv.conf", "etc/hostname"):
        (target / rel).unlink(missing_ok=True)


@dataclass(frozen=True)
class ImageFile:
    """A file to put into an image archive."""

    data: bytes
    mode: int = 0o644


def write_image_archive(
    path: Path, ref: str, files: Mapping[str, ImageFile], config: Mapping[str, object]
) -> Path:
    """Write a single-layer docker-archive tar holding ``files`` and tagged ``ref``."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, item in sorted(files.items()):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode, info.mtime = len(item.data), item.mode, 0
            tar.addfile(info, io.BytesIO(item.data))
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    image_config = json.dumps(
        {
            "architecture": "amd64" if os.uname().machine == "x86_64" else os.uname().machine,
            "os": "linux",
            "config": dict(config),
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        },
        sort_keys=True,
    ).encode()
    config_name = f"{hashlib.sha256(image_config).hexdigest()}.json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [ref], "Layers": [f"{diff_id}/layer.tar"]}]
    ).encode()
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, mode="w") as tar:
        for name, data in (
            (f"{diff_id}/layer.tar", layer_bytes),
            (config_name, image_config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)
    return path


def merge_archives(archives: list[Path], out: Path) -> Path:
    """One docker-archive holding every image of ``archives``, each shared layer stored once.

    buildah exports one image per archive; the agent, controller and burner images share their
    base and venv layers, so the merged archive is about a third of the three and imports into
    containerd that much faster.
    """
    manifest: list[object] = []
    seen: set[str] = set()
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, mode="w") as merged:
        for archive in archives:
            with tarfile.open(archive) as tar:
                for member in tar:
                    if member.name == "manifest.json":
                        stream = tar.extractfile(member)
                        assert stream is not None
                        manifest.extend(json.loads(stream.read()))
                        continue
                    if member.name in seen:
                        continue
                    seen.add(member.name)
                    merged.addfile(member, tar.extractfile(member) if member.isfile() else None)
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size, info.mtime = len(body), 0
        merged.addfile(info, io.BytesIO(body))
    os.replace(tmp, out)
    return out


def build_pause(source_dir: Path, out: Path, version: str) -> Path:
    """Compile ``build/pause/linux/pause.c`` of the Kubernetes source statically into ``out``."""
    src = source_dir / "build" / "pause" / "linux" / "pause.c"
    if not src.is_file():
        raise ImageBuildError(f"no pause source at {src}")
    out.parent.mkdir(parents=True, exist_ok=True)
    run_tool(
        ["gcc", "-Os", "-Wall", "-static", f"-DVERSION=v{version}-mbcas", "-o", str(out), str(src)],
        "gcc pause",
    )
    return out
