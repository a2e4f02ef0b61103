"""``cinestrain train``'s command line (training itself: tests/inference/test_model.py)."""

from __future__ import annotations

import pytest

from cinestrain.cli.main import main


def test_hypokinetic_share_out_of_range_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", str(tmp_path / "run"), "--steps", "1",
              "--hypokinetic-share", "1.5"])
    assert exit_info.value.code == 2
    assert "--hypokinetic-share: 1.5 is not between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
