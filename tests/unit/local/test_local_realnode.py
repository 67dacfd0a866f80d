"""The real node's pieces that need no root: configurations, the lock, archives, cache keys.

Behaviours: containerd's and the kubelet's configurations carry the settings measured to work on
this kind of machine (and keep every path under the node's directory); the CNI bridge has no
address and no masquerading; the machine lock refuses a second live node and takes over a stale
one; mounts below a directory are listed deepest first; the docker-archive written in Python has
the layout ``ctr images import`` reads; the apt mirror is read from either sources format; the
image cache key follows the build context as ``.dockerignore`` admits it; the local install's
values are the chart defaults plus images and loopback networking. The real thing runs in
tests/e2e/.
"""

from __future__ import annotations

import json
import tarfile
import tomllib
from pathlib import Path

import pytest

from mbcas.local.certs import ClusterCerts
from mbcas.local.containerd import Containerd
from mbcas.local.hostguard import NodeBusyError, NodeLock, mounts_under
from mbcas.local.imagebase import ImageFile, apt_mirror, merge_archives, write_image_archive
from mbcas.local.images import Image, ImageSet, context_key
from mbcas.local.kubelet import BRIDGE_NAME, Kubelet, cni_config


def test_containerd_config_keeps_every_path_under_its_directory_and_has_the_measured_settings(
    tmp_path: Path,
) -> None:
    ctd = Containerd(tmp_path / "ctd", "localhost/mbcas/pause:x", tmp_path / "cni", Path("/usr/lib/cni"))
    config = tomllib.loads(ctd.config_text())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True, "runc cannot lower oom_score_adj without CAP_SYS_RESOURCE"
    assert cri["sandbox_image"] == "localhost/mbcas/pause:x"
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": str(tmp_path / "cni"), "max_conf_num": 1}
    paths = [config["root"], config["state"], config["grpc"]["address"], config["ttrpc"]["address"]]
    paths += [cri["containerd"]["runtimes"]["runc"]["options"]["Root"]]
    paths += [config["plugins"]["io.containerd.internal.v1.opt"]["path"]]
    assert all(p.startswith(str(tmp_path / "ctd")) for p in paths), paths


def _certs(tmp_path: Path) -> ClusterCerts:
    return ClusterCerts(*(tmp_path / f"{n}.pem" for n in "abcdefgh"))


def test_kubelet_config_is_cgroupfs_on_v1_with_loopback_ports_and_own_directories(tmp_path: Path) -> None:
    kubelet = Kubelet(
        tmp_path / "k", Path("/bin/true"), "n1", "https://127.0.0.1:1", _certs(tmp_path), tmp_path / "s"
    )
    config = kubelet.config()
    assert config["cgroupDriver"] == "cgroupfs" and config["failCgroupV1"] is False
    assert config["failSwapOn"] is False
    assert config["address"] == "127.0.0.1" and config["healthzBindAddress"] == "127.0.0.1"
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"] == {"enabled": False}  # type: ignore[index]
    assert config["containerRuntimeEndpoint"] == f"unix://{tmp_path / 's'}"
    for key in ("podLogsDir", "volumePluginDir"):
        assert str(config[key]).startswith(str(tmp_path / "k"))
    argv = kubelet.argv(tmp_path / "c.yaml")
    assert f"--root-dir={tmp_path / 'k' / 'root'}" in argv and "--hostname-override=n1" in argv


def test_cni_bridge_has_no_address_and_no_masquerade(tmp_path: Path) -> None:
    bridge = cni_config(tmp_path / "ipam")["plugins"][0]  # type: ignore[index]
    assert bridge["type"] == "bridge" and bridge["bridge"] == BRIDGE_NAME
    assert bridge["isGateway"] is False and bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")


def test_lock_refuses_a_live_node_and_takes_over_a_stale_one(tmp_path: Path) -> None:
    lock = NodeLock(tmp_path / "node.lock")
    assert lock.acquire(tmp_path / "a", lambda _owner: False) is None
    with pytest.raises(NodeBusyError, match=r"already runs.*make node-down"):
        lock.acquire(tmp_path / "b", lambda _owner: False)
    previous = lock.acquire(tmp_path / "b", lambda owner: owner["directory"] == str(tmp_path / "a"))
    assert previous is not None and previous["directory"] == str(tmp_path / "a")
    lock.release(tmp_path / "a")  # not the owner any more: no effect
    assert lock.owner() is not None and lock.owner()["directory"] == str(tmp_path / "b")  # type: ignore[index]
    lock.release(tmp_path / "b")
    assert lock.owner() is None
    assert list(tmp_path.iterdir()) == [], "releasing leaves no file behind"


def test_mounts_under_lists_deepest_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "1 0 0:1 / / rw - ext4 /dev/vda rw\n"
        "2 1 0:2 / /n/kubelet/root rw - ext4 /dev/vda rw\n"
        "3 2 0:3 / /n/kubelet/root/pods/x/volumes/tok rw - tmpfs tmpfs rw\n"
        "4 1 0:4 / /n2 rw - tmpfs tmpfs rw\n"
        "5 1 0:5 / /n/with\\040space rw - tmpfs tmpfs rw\n"
    )
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda p, *a, **k: real_open(info if p == "/proc/self/mountinfo" else p, *a, **k)
    )
    assert mounts_under([Path("/n")]) == [
        "/n/kubelet/root/pods/x/volumes/tok",
        "/n/kubelet/root",
        "/n/with space",
    ]


def test_image_archive_has_the_docker_archive_layout(tmp_path: Path) -> None:
    path = write_image_archive(
        tmp_path / "img.tar",
        "localhost/x/pause:1",
        {"pause": ImageFile(b"\x7fELF", 0o755)},
        {"Entrypoint": ["/pause"]},
    )
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        [entry] = manifest
        assert entry["RepoTags"] == ["localhost/x/pause:1"]
        config = json.loads(tar.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
        assert config["os"] == "linux" and config["config"]["Entrypoint"] == ["/pause"]
        with tarfile.open(fileobj=tar.extractfile(entry["Layers"][0])) as layer:
            member = layer.getmember("pause")
            assert member.mode == 0o755
            assert layer.extractfile(member).read() == b"\x7fELF"  # type: ignore[union-attr]
        assert config["rootfs"]["diff_ids"] == [f"sha256:{entry['Layers'][0].split('/')[0]}"]


def test_merged_archive_holds_every_image_and_each_shared_layer_once(tmp_path: Path) -> None:
    shared = {"lib": ImageFile(b"shared layer")}
    a = write_image_archive(tmp_path / "a.tar", "localhost/x/a:1", shared, {"Entrypoint": ["/a"]})
    b = write_image_archive(tmp_path / "b.tar", "localhost/x/b:1", shared, {"Entrypoint": ["/b"]})
    merged = merge_archives([a, b], tmp_path / "ab.tar")
    with tarfile.open(merged) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert [m["RepoTags"] for m in manifest] == [["localhost/x/a:1"], ["localhost/x/b:1"]]
    assert manifest[0]["Layers"] == manifest[1]["Layers"]  # same content, same layer
    assert len(names) == len(set(names)) and names.count(manifest[0]["Layers"][0]) == 1
    assert all(m["Config"] in names for m in manifest)


def test_apt_mirror_reads_both_source_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert apt_mirror(tmp_path) == "http://mirror.invalid/debian"
    one_line = tmp_path / "other"
    (one_line / "sources.list.d").mkdir(parents=True)
    (one_line / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://m.invalid/debian bookworm main\n"
    )
    assert apt_mirror(one_line) == "http://m.invalid/debian"
    with pytest.raises(RuntimeError, match="needs a Debian host"):
        apt_mirror(tmp_path / "none")


def test_cache_key_follows_the_build_context_and_ignores_caches(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("x")
    (tmp_path / "README.md").write_text("r")
    (tmp_path / "Dockerfile").write_text("FROM x")
    (tmp_path / "src" / "pkg" / "a.py").write_text("a = 1")
    key = context_key(tmp_path, tmp_path / "Dockerfile", "base1")
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir()
    (tmp_path / "src" / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("not in the context")
    assert context_key(tmp_path, tmp_path / "Dockerfile", "base1") == key
    assert context_key(tmp_path, tmp_path / "Dockerfile", "base2") != key
    (tmp_path / "src" / "pkg" / "a.py").write_text("a = 2")
    assert context_key(tmp_path, tmp_path / "Dockerfile", "base1") != key


def test_local_values_are_the_images_and_loopback_networking_only() -> None:
    from mbcas.local.deploylocal import local_values

    def image(name: str, tag: str) -> Image:
        return Image(f"localhost/mbcas/{name}:{tag}", Path(f"/{name}.tar"))

    images = ImageSet(
        image("mbcas-agent", "a1"),
        image("mbcas-controller", "c1"),
        image("b", "a1"),
        image("p", "1"),
        Path("/b"),
    )
    values = dict(v.split("=", 1) for v in local_values(images, 6443))
    assert values == {
        "image.registry": "localhost/mbcas",
        "agent.image.tag": "a1",
        "controller.image.tag": "c1",
        "image.pullPolicy": "Never",
        "network.hostNetwork": "true",
        "network.probeHost": "127.0.0.1",
        "network.apiServerHost": "127.0.0.1",
        "network.apiServerPort": "6443",
    }
