"""SPEC 11: SIGTERM or SIGINT at any moment, start-up included, exits 130 without a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env

T360 = Path(sys.executable).with_name("t360")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_at_any_moment_of_start_up_exits_130(tmp_path: Path, signum: int) -> None:
    rows = "".join(f"{i},T{i}\n" for i in range(200_000))
    (tmp_path / "c.csv").write_text("Login,Tag\n" + rows)
    (tmp_path / "c.yaml").write_text("kind: customers\nfields:\n  customerId: Login\n  tracking_data: Tag\n")
    codes = []
    # from just after the interpreter's own start-up (before it, no program can act) to reading rows
    for delay in (0.08, 0.12, 0.16, 0.2, 0.3, 0.5, 0.8):
        proc = subprocess.Popen(
            [str(T360), "validate", "c.csv", "-m", "c.yaml"],
            cwd=tmp_path,
            env=cli_env({"T360_STATE_DIR": str(tmp_path / "state")}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            proc.wait(timeout=delay)  # a moment of its start-up, unless it is already done
        except subprocess.TimeoutExpired:
            pass
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err and "unexpected" not in err, (delay, err)
        assert proc.returncode in (130, 0), (delay, proc.returncode, err)  # 0: it finished first
        codes.append(proc.returncode)
    assert codes.count(130) >= 5, codes
