"""The one progress bar: drawn on a terminal, silent when quiet or piped."""

from __future__ import annotations

from fakestudio.progress import progress_bars, step_progress


def test_bars_draw_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich: stderr counts as a terminal
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    with progress_bars("images", transient=False) as bars:
        bars("auditing", 0, 3)
        bars("auditing", 3, 3)
        bars("second stage", 1, 2, loss="x")
    err = capsys.readouterr().err
    assert "auditing" in err and "3/3" in err and "images" in err and "second stage" in err


def test_quiet_and_piped_draw_nothing(monkeypatch, capsys):
    with progress_bars("images", quiet=True) as bars:  # quiet
        bars("auditing", 1, 2)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    with step_progress("generating") as on_step:  # captured stderr is not a terminal
        on_step(1, 2)
    assert capsys.readouterr().err == ""
