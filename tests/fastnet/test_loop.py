"""The book's loop (``fastnet.loop``): ``train_one_epoch`` is forward, loss, backward and
step on each batch, nothing more; ``evaluate`` is the argmax of the eval-mode forward.

The references are hand-written loops over the same layers, from the same seed."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

import numpy as np
import pytest
from conftest import randomize_norms
from synthetic import digits

from fastnet import loop, models, optim
from fastnet.data import iterate_batches
from fastnet.layers import SoftmaxCrossEntropy

SEED = 31
N_TRAIN, BATCH = 70, 32  # batches of 32, 32 and 6: a weighted mean differs from a plain one
MARGIN = 1e-5  # predictions are compared where the top-2 logits are further apart than this


def small_mlp(kind: str, dtype=np.float32):
    """The same model for the same ``kind``: a fresh generator of one seed every time."""
    rng = np.random.default_rng(SEED)
    if kind == "mlp":
        return models.build("mlp", rng, dtype=dtype)
    # batch statistics and dropout masks: train and eval mode differ
    return models.mlp(rng, dtype, hidden=(32, 24), batchnorm=True, dropout=0.25)


def batches(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    x, t = digits(N_TRAIN, rng)
    order = np.random.default_rng(SEED + 1)
    return list(iterate_batches(x, t, BATCH, shuffle=True, rng=order))


def by_hand(model, batches, n_steps=None):
    """The book's chapter 4-5 loop, written out: (losses, hits, sizes) per step."""
    loss_fn, opt = SoftmaxCrossEntropy(), optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses, hits, sizes = [], [], []
    for x, t in batches[:n_steps]:
        logits = model.forward(x)
        losses.append(float(loss_fn.forward(logits, t)))
        model.backward(loss_fn.backward(1.0))
        opt.step()
        hits.append(int((logits.argmax(axis=1) == t).sum()))
        sizes.append(len(t))
    return losses, hits, sizes


def assert_same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert np.array_equal(sa[name], sb[name]), name


@pytest.mark.parametrize("kind", ["mlp", "mlp-bn-dropout"])
def test_train_one_epoch_is_forward_loss_backward_step_on_each_batch(kind, rng):
    data = batches(rng)
    expected = small_mlp(kind)
    losses, hits, sizes = by_hand(expected, data)
    model = small_mlp(kind).eval()  # the loop must put it in training mode itself
    steps = []
    opt = optim.Adam(model.parameters(), lr=1e-2)
    summary = loop.train_one_epoch(
        model, SoftmaxCrossEntropy(), opt, iter(data), lambda *step: steps.append(step)
    )
    assert_same_weights(model, expected)
    assert model.training and all(m.training for _, m in model.named_modules())
    assert steps == list(zip(losses, hits, sizes, strict=True))
    assert all(type(loss) is float and type(h) is int and type(s) is int for loss, h, s in steps)
    assert sizes == [32, 32, 6]
    weighted_loss = sum(loss * s for loss, s in zip(losses, sizes, strict=True)) / N_TRAIN
    assert weighted_loss != pytest.approx(np.mean(losses), rel=1e-6)  # the test can tell
    assert summary.keys() == {"loss", "accuracy"}
    assert summary["loss"] == pytest.approx(weighted_loss, rel=1e-12)
    assert summary["accuracy"] == sum(hits) / N_TRAIN


def test_train_one_epoch_without_on_step_and_without_batches(rng):
    data = batches(rng)
    expected = small_mlp("mlp")
    by_hand(expected, data)
    model = small_mlp("mlp")
    loop.train_one_epoch(model, SoftmaxCrossEntropy(), optim.Adam(model.parameters(), 1e-2), data)
    assert_same_weights(model, expected)
    untouched = small_mlp("mlp")
    opt = optim.Adam(untouched.parameters(), 1e-2)
    summary = loop.train_one_epoch(untouched, SoftmaxCrossEntropy(), opt, [])
    assert summary == {"loss": 0.0, "accuracy": 0.0}
    assert_same_weights(untouched, small_mlp("mlp"))


def test_an_exception_in_on_step_stops_the_epoch_after_that_step(rng):
    data = batches(rng)
    expected = small_mlp("mlp")
    by_hand(expected, data, n_steps=2)
    drawn = []

    def tracked():
        for batch in data:
            drawn.append(len(batch[1]))
            yield batch

    def stop_at_second(loss, correct, size):
        if len(drawn) == 2:
            raise KeyboardInterrupt("stop")

    model = small_mlp("mlp")
    opt = optim.Adam(model.parameters(), lr=1e-2)
    with pytest.raises(KeyboardInterrupt, match="stop"):
        loop.train_one_epoch(model, SoftmaxCrossEntropy(), opt, tracked(), stop_at_second)
    assert drawn == [32, 32]  # the third batch was never drawn
    assert_same_weights(model, expected)  # both steps taken, the second before on_step


def reference_predictions(model, images: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(argmax of the plain eval-mode forward, whether its top-2 logits are MARGIN apart)."""
    model.eval()
    logits = model.forward(images.astype(dtype) / dtype(255))
    top2 = np.sort(logits, axis=1)[:, -2:]
    return logits.argmax(axis=1), top2[:, 1] - top2[:, 0] > MARGIN


@pytest.mark.parametrize("batch_size", [100, 37])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_evaluate_is_the_argmax_of_the_eval_mode_forward(batch_size, dtype, rng):
    images, labels = digits(250, rng)
    model = randomize_norms(small_mlp("mlp-bn-dropout", dtype), rng)
    expected, clear = reference_predictions(model, images, dtype)
    assert clear.sum() >= 0.9 * len(labels)  # enough predictions are compared
    saved = images.copy(), labels.copy()
    model.train()
    accuracy, pred = loop.evaluate(model, images, labels, batch_size=batch_size)
    assert not model.training and not any(m.training for _, m in model.named_modules())
    assert pred.shape == labels.shape and pred.dtype == np.int64
    np.testing.assert_array_equal(pred[clear], expected[clear])
    assert type(accuracy) is float
    assert accuracy == np.mean(pred == labels)
    assert abs(accuracy - np.mean(expected == labels)) <= np.mean(~clear)
    np.testing.assert_array_equal(images, saved[0])  # inputs not mutated
    np.testing.assert_array_equal(labels, saved[1])


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}  # fmt: skip
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstrings)


def test_code_lines_counts_code_only(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Module\ndoc."""\n\n# comment\nimport os\n\n\ndef f(a,\n      b):\n'
                      '    """Doc."""\n    return (a  # why\n            + b)\n')  # fmt: skip
    assert code_lines(sample) == 5


def test_the_loop_is_short_and_free_of_runs_ranks_files_and_signals():
    path = Path(loop.__file__)
    assert code_lines(path) < 60
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            imported.add(node.module)
    banned = ("fastnet.run", "fastnet.distributed", "fastnet.checkpoint", "signal")
    assert imported and not [m for m in imported if m.startswith(banned)], imported
    code = "import sys, fastnet.loop; print(sorted(m for m in sys.modules if m.startswith(" \
           "('fastnet.run', 'fastnet.distributed'))))"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
