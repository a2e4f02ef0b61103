"""The one logging set-up (:mod:`cinestrain.logs`), each check in a fresh interpreter (it
sets process-wide state): library levels, whole lines from several processes in one file,
a rotated file, warnings as records, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout (stderr: must be empty)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


LEVELS = """
import json, logging, sys
from cinestrain.config.schema import LoggingSection
from cinestrain.logs import configure_logging
configure_logging(LoggingSection(level=sys.argv[1]), int(sys.argv[2]))
print(json.dumps({name: logging.getLogger(name).getEffectiveLevel() for name in
                  ("highdicom", "pydicom", "pynetdicom.transport", "apscheduler", "")}))
"""


def levels(level: str, verbosity: int) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", LEVELS, level, str(verbosity)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    return json.loads(done.stdout)


def test_libraries_are_quiet_unless_verbose() -> None:
    quiet = levels("INFO", 0)
    assert quiet == {"highdicom": 30, "pydicom": 30, "pynetdicom.transport": 30,
                     "apscheduler": 40, "": 20}
    assert levels("INFO", 1)["highdicom"] == 20  # -v: their INFO comes back
    debug = levels("DEBUG", 0)
    assert debug[""] == 10 and debug["highdicom"] == debug["pynetdicom.transport"] == 20
    assert levels("WARNING", 2)[""] == 10  # -vv


def test_pynetdicom_keeps_only_its_exception_reports(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    python(f"""
import logging
from cinestrain.config.schema import LoggingSection
from cinestrain.logs import configure_logging
configure_logging(LoggingSection(format="json", file={str(log)!r}))
transport = logging.getLogger("pynetdicom.transport")
transport.error("Association request failed: unable to connect to remote")
try:
    raise ValueError("in a handler")
except ValueError as exc:
    logging.getLogger("pynetdicom.association").exception(exc)
logging.getLogger("cinestrain.node.export").warning("export 1 try 1 failed")
""")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["logger"] for e in entries] == ["pynetdicom.association",
                                              "cinestrain.node.export"]
    assert "ValueError: in a handler" in entries[0]["exception"]


def test_processes_append_whole_lines_to_one_file(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    writer = f"""
import logging, os
from cinestrain.config.schema import LoggingSection
from cinestrain.logs import configure_logging
configure_logging(LoggingSection(format="json", file={str(log)!r}))
for n in range(2000):
    logging.getLogger("w").warning("%d %d %s", os.getpid(), n, "x" * (n % 9000))
"""
    procs = [subprocess.Popen([sys.executable, "-c", writer], cwd=ROOT) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    entries = [json.loads(line) for line in log.read_text().splitlines()]  # no torn line
    assert len(entries) == 6000
    for pid in {e["pid"] for e in entries}:  # each process's lines whole and in order
        numbers = [int(e["message"].split()[1]) for e in entries if e["pid"] == pid]
        assert numbers == list(range(2000))


def test_a_rotated_file_is_created_again_and_warnings_are_records(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    python(f"""
import logging, os, warnings
from cinestrain.config.schema import LoggingSection
from cinestrain.logs import configure_logging
configure_logging(LoggingSection(format="json", file={str(log)!r}))
logging.getLogger("a").warning("before")
os.rename({str(log)!r}, {str(log) + ".1"!r})
logging.getLogger("a").warning("after")
warnings.warn("a library's note")
from pydicom.dataset import Dataset
Dataset().StudyInstanceUID = "1.2.03"  # pydicom logs it, and warns it again
""")
    assert json.loads(Path(str(log) + ".1").read_text())["message"] == "before"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["logger"] for e in entries] == ["a", "py.warnings", "pydicom"]
    assert "a library's note" in entries[1]["message"]  # the pydicom one once, not twice
