"""DICOM TLS on the SCP: a throw-away CA, node and client certificates made with openssl;
real associations from pynetdicom and DCMTK ``storescu +tls``."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage

from cinestrain.inference.phantom.scanner import write_cine_classic
from tests.node.conftest import TOOL_TIMEOUT_S, Receiver, storescu

pytestmark = [
    pytest.mark.requires_tool("openssl", "making the test certificates (Debian package openssl)"),
    pytest.mark.requires_tool("storescu", "storescu +tls (Debian package dcmtk)"),
]


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True,
                   timeout=TOOL_TIMEOUT_S)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """``ca.crt``; ``node.crt``/``node.key`` (127.0.0.1); ``client.crt``/``client.key``;
    ``rogue.crt``/``rogue.key`` signed by another CA."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                 f"/CN=cinestrain test {ca}", "-keyout", d / f"{ca}.key", "-out", d / f"{ca}.crt")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ca in (("node", "ca"), ("client", "ca"), ("rogue", "rogue-ca")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr")
        _openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / f"{ca}.crt", "-CAkey",
                 d / f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", d / "san.ext",
                 "-out", d / f"{name}.crt")
    return d


@pytest.fixture
def tls_receiver(make_config, pki):
    cfg = make_config(node={"tls": {
        "enabled": True, "certificate": str(pki / "node.crt"),
        "private_key": str(pki / "node.key"), "ca_certificates": str(pki / "ca.crt"),
        "require_client_certificate": True,
    }})
    node = Receiver(cfg)
    yield node
    node.stop()


@pytest.fixture
def one_file(make_study, tmp_path) -> Path:
    return write_cine_classic(make_study(n_slices=1, n_phases=1), tmp_path / "src")[0]


def _store_over_tls(cfg, path: Path, pki: Path, client: str | None) -> bool:
    """C-STORE one file with pynetdicom over TLS; True when stored."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.crt"))
    if client is not None:
        context.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
    ae = AE(ae_title="STORESCU")
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate("127.0.0.1", cfg.node.port, ae_title="CINESTRAIN",
                         tls_args=(context, "127.0.0.1"))
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_store(dcmread(path))
        return bool(status) and status.Status == 0x0000
    finally:
        assoc.release()


def test_client_with_a_certificate_of_our_ca_stores(tls_receiver, pki, one_file):
    assert _store_over_tls(tls_receiver.cfg, one_file, pki, "client")
    [stored] = tls_receiver.spooled()
    sent, got = dcmread(one_file), dcmread(stored)
    assert got.SOPInstanceUID == sent.SOPInstanceUID and got.PixelData == sent.PixelData


@pytest.mark.parametrize("client", [None, "rogue"])
def test_client_without_a_valid_certificate_is_refused(tls_receiver, pki, one_file, client):
    assert not _store_over_tls(tls_receiver.cfg, one_file, pki, client)
    assert tls_receiver.spooled() == []


def test_plain_tcp_is_refused(tls_receiver, one_file):
    result = storescu(tls_receiver.cfg, one_file)
    assert result.returncode != 0
    assert tls_receiver.spooled() == []


def test_dcmtk_storescu_over_tls(tls_receiver, pki, one_file):
    result = storescu(tls_receiver.cfg, one_file, extra=(
        "+tls", str(pki / "client.key"), str(pki / "client.crt"), "+cf", str(pki / "ca.crt")))
    assert result.returncode == 0, result.stderr
    assert len(tls_receiver.spooled()) == 1
