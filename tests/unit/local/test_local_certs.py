"""Certificates of the local control plane: a real chain openssl verifies, SANs, a usable kubeconfig."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mbcas.local.certs import generate_certs, write_kubeconfig

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def _text(cert: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-text"], capture_output=True, text=True, check=True
    ).stdout


def test_chain_sans_and_admin_group(tmp_path: Path) -> None:
    certs = generate_certs(
        tmp_path / "pki", ip_sans=["127.0.0.1", "10.96.0.1"], dns_sans=["localhost", "kubernetes"]
    )
    for cert in (certs.serving_cert, certs.admin_cert):
        verify = subprocess.run(
            ["openssl", "verify", "-CAfile", str(certs.ca_cert), str(cert)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0, verify.stderr
    serving = _text(certs.serving_cert)
    assert "IP Address:127.0.0.1" in serving and "IP Address:10.96.0.1" in serving
    assert "DNS:kubernetes" in serving and "TLS Web Server Authentication" in serving
    admin = _text(certs.admin_cert)
    assert "O=system:masters" in admin.replace(" = ", "=")
    assert "TLS Web Client Authentication" in admin
    assert certs.sa_pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert (certs.admin_key.stat().st_mode & 0o077) == 0  # private keys are private


def test_kubeconfig_embeds_everything(tmp_path: Path) -> None:
    certs = generate_certs(tmp_path / "pki", ip_sans=["127.0.0.1"], dns_sans=["localhost"])
    path = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", certs)
    config = yaml.safe_load(path.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    user = config["users"][0]["user"]
    assert {"client-certificate-data", "client-key-data"} <= set(user)
    from kubernetes import client
    from kubernetes import config as kconfig

    cfg = client.Configuration()
    kconfig.load_kube_config(config_file=str(path), client_configuration=cfg)
    assert cfg.host == "https://127.0.0.1:6443"
