"""Exit statuses and stop messages, the same for every command (README, "Operate"):
0 done, 1 not done, 2 usage or configuration error, 130 after Ctrl-C (``serve`` and
``view`` exit 0 on SIGTERM, a one-shot command 143), and never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cinestrain.cli.main import main
from cinestrain.inference.model.shipped_weights import shipped_weights_path
from tests.node.conftest import free_port, wait_for

EXE = Path(sys.executable).parent / "cinestrain"
WEIGHTS = shipped_weights_path("gru")

#: every command that reads the node's configuration, with what else it needs
WITH_CONFIG = {
    "config": ["config", "check", "{config}"],
    "serve": ["serve", "--config", "{config}"],
    "status": ["status", "--config", "{config}"],
    "echo": ["echo", "pacs", "--config", "{config}"],
    "send": ["send", "1", "--config", "{config}"],
    "retry": ["retry", "1", "--config", "{config}"],
    "jobs": ["jobs", "show", "1", "--config", "{config}"],
    "analyze": ["analyze", "{tmp}", "--out", "{tmp}/out", "--config", "{config}"],
}


def node_toml(tmp_path: Path, port: int | None = None, extra: str = "") -> Path:
    """A valid configuration: storage in ``tmp_path``, loopback ports free now."""
    path = tmp_path / "node.toml"
    path.write_text(
        f'[node]\nport = {port or free_port()}\nallowed_callers = [{{ae_title = "STORESCU"}}]\n'
        f'[storage]\ndirectory = "{tmp_path / "store"}"\nmin_free_mb = 1\n'
        f'[http]\nport = {free_port()}\n'
        f'[logging]\nlevel = "INFO"\n{extra}')
    return path


def run(argv: list[str], **fields: object) -> int:
    return main([a.format(**fields) for a in argv])


@pytest.mark.parametrize("command", sorted(WITH_CONFIG))
def test_an_invalid_configuration_exits_2_from_every_command(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[node]\nport = "eleven"\n')
    assert run(WITH_CONFIG[command], config=config, tmp=tmp_path) == 2
    err = capsys.readouterr().err
    assert f"cinestrain {command}" in err and "node.port" in err, err


@pytest.mark.parametrize("command", ["config", "serve"])
def test_a_missing_model_file_is_a_configuration_error(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = node_toml(tmp_path, extra=f'[model]\nweights = "{tmp_path / "none.pt"}"\n')
    assert run(WITH_CONFIG[command], config=config, tmp=tmp_path) == 2
    assert "none.pt" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["phantom", "--out", str(tmp_path), "--cases", "0"]) == 2
    assert main(["inspect", str(tmp_path / "nowhere")]) == 2
    assert main(["echo", "pacs", "--config", str(node_toml(tmp_path))]) == 2  # no such one
    assert main(["train", "--out", str(tmp_path / "run"), "--init", str(tmp_path / "x.pt")]) == 2
    assert main(["train", "--out", str(tmp_path / "run"), "--real", str(tmp_path / "no")]) == 2
    with pytest.raises(SystemExit) as stop:
        main(["analyze"])  # argparse: a required argument missing
    assert stop.value.code == 2
    capsys.readouterr()


def test_nothing_analysable_exits_1_and_names_the_problems(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(4):
        (tmp_path / "in" / f"f{n}.dcm").parent.mkdir(exist_ok=True)
        (tmp_path / "in" / f"f{n}.dcm").write_text("not DICOM")
    assert main(["inspect", str(tmp_path / "in")]) == 1
    err = capsys.readouterr().err
    assert "4 x NotDicomError: not a DICOM file" in err and "f0.dcm" in err, err
    assert main(["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "0 series; 4 x NotDicomError" in err, err


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([str(EXE), "serve", "--config", str(node_toml(tmp_path, port))],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"127.0.0.1:{port}: Address already in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def start(argv: list[str], tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A command in its own process group (as a terminal runs it), stderr to a file."""
    err = tmp_path / "stderr.log"
    with err.open("w") as stream:
        proc = subprocess.Popen([str(EXE), *argv], stdout=subprocess.DEVNULL, stderr=stream,
                                start_new_session=True)
    return proc, err


def stop(proc: subprocess.Popen, signum: int) -> int:
    """``signum`` to the whole process group: Ctrl-C reaches every process of the
    command (the node's worker processes too), and so does systemd's stop."""
    os.killpg(proc.pid, signum)
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.requires_file(WEIGHTS, "the shipped motion model (serve refuses to start without)")
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_serve_stops_cleanly_on_ctrl_c_and_sigterm(signum: int, status: int,
                                                    tmp_path: Path) -> None:
    proc, err = start(["serve", "--config", str(node_toml(tmp_path))], tmp_path)
    # at once when the port is open: the worker process is still importing then
    assert wait_for(lambda: "listening as" in err.read_text(), 60), err.read_text()
    assert stop(proc, signum) == status
    text = err.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert f"{signal.Signals(signum).name}: stopping" in text and "node stopped" in text, text


@pytest.mark.parametrize(("signum", "status", "said"),
                         [(signal.SIGINT, 130, "stopped (Ctrl-C)"),
                          (signal.SIGTERM, 143, "stopped (SIGTERM)")])
def test_a_one_shot_command_stops_with_one_line(signum: int, status: int, said: str,
                                                tmp_path: Path) -> None:
    proc, err = start(["phantom", "--out", str(tmp_path / "out"), "--cases", "50"], tmp_path)
    assert wait_for(lambda: "case 000" in err.read_text(), 60), err.read_text()
    time.sleep(0.5)
    assert stop(proc, signum) == status
    text = err.read_text()
    assert "Traceback" not in text, text
    assert f"cinestrain phantom: {said}" in text, text[-500:]
