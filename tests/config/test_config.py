"""The configuration schema, loader and ``cinestrain config`` command."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cinestrain.config import ConfigError, NodeConfig, default_config_path, load_config
from cinestrain.config.load import parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "cinestrain" / "config" / "example.toml"


def test_default_file_matches_schema_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """default.toml documents the field defaults; the two must never drift apart."""
    monkeypatch.delenv("CINESTRAIN_CONFIG", raising=False)
    assert load_config() == NodeConfig()
    assert load_config(default_config_path()) == NodeConfig()


def test_defaults_run_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    cfg = NodeConfig()
    assert cfg.storage.directory == tmp_path / "xdg" / "cinestrain"
    assert cfg.node.port > 1023
    assert cfg.node.bind_address == "127.0.0.1"
    assert not cfg.node.allow_any_caller


def test_example_is_a_hospital_install() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.storage.directory == Path("/var/lib/cinestrain")
    assert [d.name for d in cfg.destinations] == ["pacs", "viewer"]
    assert cfg.node.allowed_callers[0].hosts == ["10.20.30.41"]


def test_every_bad_key_is_named_with_value_and_allowed() -> None:
    data = {
        "node": {"port": 70000, "ae_title": "X" * 17},
        "model": {"pairing": "both", "temporal": "lstm"},
        "storage": {"min_free_mb": -1},
        "bogus": 1,
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    text = str(info.value)
    assert "node.port = 70000" in text and "65535" in text
    assert "node.ae_title = 'XXXXXXXXXXXXXXXXX'" in text and "16 characters" in text
    assert "model.pairing = 'both'" in text and "'anchored' or 'consecutive'" in text
    assert "model.temporal = 'lstm'" in text and "'transformer'" in text
    assert "storage.min_free_mb = -1" in text
    assert "bogus: unknown key" in text
    assert len(info.value.problems) == 6


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"node": {"ae_title": "   "}}, "node.ae_title"),
        ({"node": {"ae_title": "A\\B"}}, "node.ae_title"),
        ({"node": {"bind_address": "localhost"}}, "must be an IP address"),
        ({"node": {"max_pdu": 100}}, "at least 4096"),
        ({"node": {"allowed_callers": [{"ae_title": "S", "hosts": ["not-ip"]}]}}, "not an IP"),
        ({"node": {"tls": {"enabled": True}}}, "needs 'certificate'"),
        ({"model": {"ed_phase": -1}}, "model.ed_phase"),
        ({"export": {"retry_initial_seconds": 10, "retry_max_seconds": 5}}, "retry_max_seconds"),
        ({"destinations": [{"kind": "ftp", "name": "x"}]}, "destinations.0"),
        (
            {"destinations": [{"kind": "dicom", "name": "p", "ae_title": "P", "host": "h"}]},
            "port: required key is missing",
        ),
        (
            {
                "destinations": [
                    {"kind": "folder", "name": "a", "path": "/tmp/a"},
                    {"kind": "folder", "name": "a", "path": "/tmp/b"},
                ]
            },
            "unique",
        ),
    ],
)
def test_invalid_values_are_refused(section: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(section)
    assert expected in str(info.value)


def test_destinations_are_a_discriminated_union() -> None:
    cfg = parse_config(
        {
            "destinations": [
                {
                    "kind": "dicom",
                    "name": "pacs",
                    "ae_title": "PACS",
                    "host": "127.0.0.1",
                    "port": 4242,
                },
                {"kind": "folder", "name": "copy", "path": "/srv/out"},
            ]
        }
    )
    assert [type(d).__name__ for d in cfg.destinations] == ["DicomDestination", "FolderDestination"]


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[node\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_environment_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nae_title = "ENVNODE"\nport = 10400\n')
    monkeypatch.setenv("CINESTRAIN_CONFIG", str(path))
    cfg = load_config()
    assert (cfg.node.ae_title, cfg.node.port) == ("ENVNODE", 10400)


def test_config_check_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from cinestrain.cli.main import main

    assert main(["config", "check", str(EXAMPLE)]) == 0
    printed = capsys.readouterr().out
    effective = tomllib.loads(printed)  # the printout is itself a valid configuration
    assert parse_config(effective) == load_config(EXAMPLE)

    assert main(["config", "check", str(EXAMPLE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["node"]["max_associations"] == 8

    bad = tmp_path / "bad.toml"
    bad.write_text('[node]\nport = "eleven"\n')
    assert main(["config", "check", str(bad)]) == 2  # a configuration error, as everywhere
    assert "node.port = 'eleven'" in capsys.readouterr().err

    assert main(["config", "default"]) == 0
    assert tomllib.loads(capsys.readouterr().out)["node"]["ae_title"] == "CINESTRAIN"


def test_check_refuses_a_model_without_weights(tmp_path: Path, capsys) -> None:
    from cinestrain.cli.main import main

    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[model]\ntemporal = "none"\nweights = "{tmp_path / "absent.pt"}"\n')
    assert main(["config", "check", str(cfg)]) == 2
    assert f"model file not found: {tmp_path / 'absent.pt'}" in capsys.readouterr().err


def test_serve_refuses_to_start_without_model_weights(tmp_path: Path, capsys) -> None:
    # every job would fail at the model stage: said once, at start-up
    from cinestrain.cli.main import main

    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[model]\nweights = "{tmp_path / "absent.pt"}"\n')
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "model file not found" in capsys.readouterr().err
