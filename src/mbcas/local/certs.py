"""Certificates, keys and the admin kubeconfig of a local control plane.

Everything is generated with the ``openssl`` command line (present on every Linux machine this
project targets), so the harness needs no extra Python dependency: a throw-away CA, the
apiserver's serving certificate (SANs for loopback, the advertise address and the in-cluster
service names), an admin client certificate in ``O=system:masters`` and the RSA key pair that
signs and verifies service-account tokens. Keys never leave the state directory, which is
removed when the control plane stops.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["CertError", "ClusterCerts", "generate_certs", "sign_client_cert", "write_kubeconfig"]

_DAYS = "3650"


class CertError(RuntimeError):
    """openssl is missing or failed; the message carries its stderr."""


@dataclass(frozen=True)
class ClusterCerts:
    """Paths of the generated PEM files."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise CertError("the 'openssl' command is needed to generate the local control plane's certificates")
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _signed_cert(
    directory: Path, name: str, subject: str, extensions: str, *, ca: tuple[Path, Path]
) -> tuple[Path, Path]:
    ca_cert, ca_key = ca
    key = directory / f"{name}.key"
    csr = directory / f"{name}.csr"
    cert = directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("genrsa", "-out", str(key), "2048", cwd=directory)
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=directory)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", _DAYS, "-sha256", "-extfile", str(ext), "-out", str(cert),
        cwd=directory,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return cert, key


def generate_certs(directory: Path, ip_sans: list[str], dns_sans: list[str]) -> ClusterCerts:
    """Create a CA, the apiserver serving pair, an admin client pair and the SA key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = directory / "ca.key"
    ca_cert = directory / "ca.crt"
    _openssl("genrsa", "-out", str(ca_key), "2048", cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=mbcas-local-ca", "-days", _DAYS,
        "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", str(ca_cert),
        cwd=directory,
    )  # fmt: skip
    sans = ",".join([*(f"IP:{ip}" for ip in ip_sans), *(f"DNS:{d}" for d in dns_sans)])
    serving_cert, serving_key = _signed_cert(
        directory,
        "apiserver",
        "/CN=kube-apiserver",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n",
        ca=(ca_cert, ca_key),
    )
    admin_cert, admin_key = _signed_cert(
        directory,
        "admin",
        "/O=system:masters/CN=mbcas-admin",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n",
        ca=(ca_cert, ca_key),
    )
    sa_key = directory / "sa.key"
    sa_pub = directory / "sa.pub"
    _openssl("genrsa", "-out", str(sa_key), "2048", cwd=directory)
    _openssl("rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub), cwd=directory)
    for key in (ca_key, serving_key, admin_key, sa_key):
        key.chmod(0o600)
    return ClusterCerts(ca_cert, ca_key, serving_cert, serving_key, admin_cert, admin_key, sa_key, sa_pub)


def sign_client_cert(directory: Path, name: str, subject: str, certs: ClusterCerts) -> tuple[Path, Path]:
    """A client certificate and key signed by the cluster CA (e.g. a kubelet's
    ``/O=system:nodes/CN=system:node:<node>``); returns ``(cert, key)`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = _signed_cert(
        directory,
        name,
        subject,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n",
        ca=(certs.ca_cert, certs.ca_key),
    )
    key.chmod(0o600)
    return cert, key


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_kubeconfig(
    path: Path,
    server: str,
    certs: ClusterCerts,
    name: str = "mbcas-local",
    client: tuple[Path, Path] | None = None,
) -> Path:
    """Write a kubeconfig with the certificates embedded (portable, one file): the admin's, or
    ``client`` = ``(cert, key)`` (e.g. a kubelet's)."""
    client_cert, client_key = client or (certs.admin_cert, certs.admin_key)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(certs.ca_cert)}}
        ],
        "users": [
            {
                "name": f"{name}-admin",
                "user": {
                    "client-certificate-data": _b64(client_cert),
                    "client-key-data": _b64(client_key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
