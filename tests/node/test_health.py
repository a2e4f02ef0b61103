"""The node's /healthz and /metrics: scraped over HTTP after a real job on the node."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pynetdicom.sop_class import MRImageStorage

from cinestrain.config import ConfigError
from cinestrain.config.load import parse_config
from cinestrain.node.service import Node
from cinestrain.node.states import JobState
from tests.node.conftest import free_port, run_tool, storescu, wait_for

pytestmark = pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")


def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and body of GET ``path`` on the node's HTTP endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    status, text = http_get(port, "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_and_health_after_a_job(make_config, phantom_dir, tiny_weights, tmp_path):
    cfg = make_config(
        model={"weights": str(tiny_weights)},
        worker={"device": "cpu", "torch_threads": 1},
        export={"retry_max": 0},  # a failed try is final: one failure, then dead
        destinations=[
            {"kind": "folder", "name": "archive", "path": str(tmp_path / "out")},
            {"kind": "dicom", "name": "nowhere", "ae_title": "NOWHERE",
             "host": "127.0.0.1", "port": free_port()},
        ],
    )
    threads_before = set(threading.enumerate())
    node = Node(cfg)
    node.start()
    port = cfg.http.port
    try:
        files = sorted((phantom_dir / "dicom").iterdir())
        assert storescu(cfg, *files).returncode == 0
        refused = run_tool("echoscu", "-aet", "INTRUDER", "-aec", cfg.node.ae_title,
                           "127.0.0.1", str(cfg.node.port))
        assert refused.returncode != 0
        assert wait_for(lambda: [j.state for j in node.index.jobs()] == [JobState.DONE], 180), (
            node.index.jobs())
        assert wait_for(lambda: sorted(e.state for e in node.index.exports())
                        == ["dead", "done"], 60), node.index.exports()
        job_count = ("cinestrain_job_duration_seconds_count", (("outcome", "done"),))
        assert wait_for(lambda: scrape(port).get(job_count) == 1, 10)

        metrics = scrape(port)
        received = ("cinestrain_instances_received_total",
                    (("result", "stored"), ("sop_class", str(MRImageStorage))))
        assert metrics[received] == len(files)
        assert not [k for k in metrics if k[0] == "cinestrain_instances_received_total"
                    and ("result", "refused") in k[1]]
        assert metrics[("cinestrain_associations_accepted_total", ())] == 1
        rejected = {k[1]: v for k, v in metrics.items()
                    if k[0] == "cinestrain_associations_rejected_total"}
        assert rejected == {(("reason", "calling_ae_not_recognised"),): 1}
        assert metrics[("cinestrain_jobs", (("state", "done"),))] == 1
        assert metrics[("cinestrain_jobs", (("state", "failed"),))] == 0
        assert metrics[("cinestrain_exports", (("state", "done"),))] == 1
        assert metrics[("cinestrain_exports", (("state", "dead"),))] == 1
        assert metrics[("cinestrain_export_failures_total", (("destination", "nowhere"),))] == 1
        assert ("cinestrain_export_failures_total", (("destination", "archive"),)) not in metrics
        duration = metrics[("cinestrain_job_duration_seconds_sum", (("outcome", "done"),))]
        assert 0 < duration < 180
        free = metrics[("cinestrain_storage_free_bytes", ())]
        assert abs(free - shutil.disk_usage(cfg.storage.directory).free) < 2**30

        status, body = http_get(port, "/healthz")
        assert status == 200, body
        assert json.loads(body) == {"status": "ok", "checks": {
            "scp": "ok", "scheduler": "ok", "index": "ok"}}
        assert http_get(port, "/nothing")[0] == 404

        # the DICOM port closes (as if the SCP had died): /healthz says so
        node.server.shutdown()
        node.server = None
        status, body = http_get(port, "/healthz")
        assert status == 503
        report = json.loads(body)
        assert report["status"] == "unavailable"
        assert report["checks"]["scp"] == "the DICOM port is not listening"
        assert report["checks"]["index"] == "ok"
    finally:
        node.stop()
    with pytest.raises(urllib.error.URLError):  # the endpoint is gone, its thread too
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    leaked = [t for t in set(threading.enumerate()) - threads_before
              if t.name == "http-health" and t.is_alive()]
    assert not leaked


def test_healthz_names_every_failed_check(make_config):
    """A node whose endpoint runs but whose SCP and scheduler are not started: 503."""
    node = Node(make_config())
    try:
        node.http.start()
        status, body = http_get(node.http.port, "/healthz")
        assert status == 503
        assert json.loads(body)["checks"] == {
            "scp": "the DICOM port is not listening",
            "scheduler": "the scheduler is not running",
            "index": "ok",
        }
        node.index.close()
        status, body = http_get(node.http.port, "/healthz")
        assert status == 503
        assert json.loads(body)["checks"]["index"].startswith("the index cannot be read")
        assert http_get(node.http.port, "/metrics")[0] == 200  # without the index's gauges
    finally:
        node.http.stop()
        node.index.close()


def test_http_port_in_use_names_the_address(make_config):
    cfg = make_config()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", cfg.http.port))
        busy.listen()
        node = Node(cfg)
        try:
            with pytest.raises(OSError, match=rf"\[http\]\) on 127\.0\.0\.1:{cfg.http.port}"):
                node.start()
            assert node.server is None  # nothing else started
        finally:
            node.index.close()


def test_endpoint_closes_when_the_dicom_port_is_in_use(make_config):
    cfg = make_config()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", cfg.node.port))
        busy.listen()
        node = Node(cfg)
        try:
            with pytest.raises(OSError):
                node.start()
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(f"http://127.0.0.1:{cfg.http.port}/healthz", timeout=5)
        finally:
            node.index.close()


def test_http_endpoint_can_be_turned_off(make_config):
    cfg = make_config(http={"enabled": False})
    node = Node(cfg)
    node.start()
    try:
        assert node.http is None
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{cfg.http.port}/healthz", timeout=5)
    finally:
        node.stop()


@pytest.mark.parametrize(("section", "expected"), [
    ({"bind_address": "localhost"}, "http.bind_address = 'localhost': must be an IP address"),
    ({"port": 0}, "http.port = 0"),
    ({"port": 11112}, "http.port 11112 is also node.port"),
    ({"enable": True}, "http.enable: unknown key"),
])
def test_http_section_is_validated(section, expected):
    with pytest.raises(ConfigError) as info:
        parse_config({"node": {"port": 11112}, "http": section})
    assert expected in str(info.value)
