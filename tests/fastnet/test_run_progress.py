"""``fastnet.run.progress``: a plain line every tenth of an epoch in a log, tqdm's bar on a
terminal; nothing extra at the end."""

from __future__ import annotations

import pytest

from fastnet.run.progress import ProgressBar


def run_bar(total: int, initial: int, terminal: bool = False) -> None:
    bar = ProgressBar(terminal, total, initial, "epoch 2/5")
    for n in range(initial + 1, total + 1):
        bar.update(1.0 / n, 100.0 * n)
    bar.close()


# (total, steps done before, the steps after which a line is printed)
LINES = [
    (100, 0, [10, 20, 30, 40, 50, 60, 70, 80, 90]),
    (20, 0, [2, 4, 6, 8, 10, 12, 14, 16, 18]),
    (20, 7, [8, 10, 12, 14, 16, 18]),  # resumed mid-epoch
    (5, 0, [1, 2, 3, 4]),  # fewer steps than tenths: every step
    (1, 0, []),
]


@pytest.mark.parametrize("total, initial, steps", LINES)
def test_a_log_gets_a_plain_line_every_tenth_and_none_at_the_end(total, initial, steps, capsys):
    run_bar(total, initial)
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"epoch 2/5 step {n}/{total}  loss {1.0 / n:.4f}  {100 * n} img/s" for n in steps
    ]
    assert err == ""


def test_a_line_shows_the_loss_and_speed_given(capsys):
    bar = ProgressBar(False, 10, 0, "epoch 1/1")
    bar.update(2.345678, 1234.4)
    assert capsys.readouterr().out == "epoch 1/1 step 1/10  loss 2.3457  1234 img/s\n"


def test_a_terminal_gets_a_bar_and_no_plain_lines(capsys):
    run_bar(20, 0, terminal=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "epoch 2/5" in err and "20/20" in err and "batch" in err
