"""Progress within an epoch: tqdm's bar on a terminal, else a plain line every tenth."""

from __future__ import annotations


class ProgressBar:
    """One epoch's progress.

    Parameters
    ----------
    terminal : bool
        tqdm's bar (for a terminal), else plain lines (for a log file).
    total, initial : int
        Steps in the epoch and steps already done (when resuming mid-epoch).
    desc : str
        E.g. ``"epoch 3/20"``.
    """

    def __init__(self, terminal: bool, total: int, initial: int, desc: str) -> None:
        self.total, self.n, self.desc = total, initial, desc
        self.tqdm = None
        if terminal:
            from tqdm import tqdm

            self.tqdm = tqdm(total=total, initial=initial, desc=desc, unit="batch")

    def update(self, loss: float, images_per_s: float) -> None:
        """One more step, whose mean loss was ``loss``."""
        self.n += 1
        if self.tqdm is not None:
            self.tqdm.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.0f}", refresh=False)
            self.tqdm.update(1)
        elif self.n % max(1, self.total // 10) == 0 and self.n < self.total:
            print(f"{self.desc} step {self.n}/{self.total}  loss {loss:.4f}  "
                  f"{images_per_s:.0f} img/s", flush=True)  # fmt: skip

    def close(self) -> None:
        """End the bar (tqdm's last refresh)."""
        if self.tqdm is not None:
            self.tqdm.close()
