"""fastnet.optim: torch trajectory parity (recorded fixture), defaults, state, validation.

The fixture is written by ``tools/make_torch_optim_fixtures.py`` with torch installed;
these tests replay its gradients without torch.
"""

import ast
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import TOLERANCES

from fastnet import optim
from fastnet.module import Parameter
from kernels import _jit

with np.load(
    Path(__file__).parent / "data" / "torch_optim_trajectories.npz", allow_pickle=False
) as f:
    FIXTURE = dict(f)
CONFIGS = json.loads(str(FIXTURE["configs"]))
TORCH_DEFAULTS = json.loads(str(FIXTURE["defaults"]))
STEPS = FIXTURE["present"].shape[0]
RTOL, ATOL = TOLERANCES["optim"]["float64"]


def _params():
    return [Parameter(FIXTURE[f"init.{i}"].copy(), name=f"p{i}") for i in range(2)]


def _optimizer(config, params):
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config["kwargs"].items()}
    return getattr(optim, config["optimizer"])(params, **kwargs)


def _replay(params, opt, steps):
    """Run the fixture's gradient steps ``steps``; return each parameter's trajectory."""
    traj = [[] for _ in params]
    for t in steps:
        for i, p in enumerate(params):
            p.grad = FIXTURE[f"grads.{i}"][t].copy() if FIXTURE["present"][t, i] else None
        opt.step()
        for i, p in enumerate(params):
            traj[i].append(p.data.copy())
    return [np.stack(x) for x in traj]


@pytest.mark.parametrize("config", CONFIGS, ids=[c["name"] for c in CONFIGS])
def test_trajectory_matches_torch(config):
    params = _params()
    opt = _optimizer(config, params)
    traj = _replay(params, opt, range(STEPS))
    for i in range(2):
        expected = FIXTURE[f"{config['name']}.traj.{i}"][1:]
        assert traj[i].dtype == np.float64
        np.testing.assert_allclose(traj[i], expected, rtol=RTOL, atol=ATOL)
    state = opt.state_dict()
    prefix = f"{config['name']}.state."
    torch_state = {k[len(prefix) :]: FIXTURE[k] for k in FIXTURE if k.startswith(prefix)}
    assert set(torch_state) == {k[len("state.") :] for k in state if k.startswith("state.")}
    for key, value in torch_state.items():
        np.testing.assert_allclose(state[f"state.{key}"], value, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("config", CONFIGS[1::4], ids=[c["name"] for c in CONFIGS[1::4]])
def test_parallel_kernels_follow_the_same_trajectory(config, monkeypatch):
    monkeypatch.setattr(_jit, "PARALLEL_MIN_SIZE", 1)
    params = _params()
    traj = _replay(params, _optimizer(config, params), range(STEPS))
    for i in range(2):
        expected = FIXTURE[f"{config['name']}.traj.{i}"][1:]
        np.testing.assert_allclose(traj[i], expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(TORCH_DEFAULTS))
def test_defaults_are_torchs(name):
    signature = inspect.signature(getattr(optim, name)).parameters
    ours = {arg: signature[arg].default for arg in signature if arg != "params"}
    theirs = {k: tuple(v) if isinstance(v, list) else v for k, v in TORCH_DEFAULTS[name].items()}
    assert ours == theirs


@pytest.mark.parametrize("name", sorted(TORCH_DEFAULTS))
def test_docstring_defaults_are_the_declared_ones(name):
    cls = getattr(optim, name)
    documented = re.findall(
        r"^ {4}(\w+) : [^\n]*, default (.+?)(?: \(keyword only\))?$", cls.__doc__, re.M
    )
    signature = inspect.signature(cls).parameters
    assert {arg: ast.literal_eval(value) for arg, value in documented} == {
        arg: signature[arg].default for arg in signature if arg != "params"
    }


def test_adamw_is_decoupled_adam():
    params = [Parameter(np.ones(3))]
    assert optim.AdamW(params).decoupled_weight_decay is True
    assert optim.Adam(params).decoupled_weight_decay is False


@pytest.mark.parametrize("config", CONFIGS, ids=[c["name"] for c in CONFIGS])
def test_state_dict_round_trip_continues_identically(config, tmp_path):
    params = _params()
    opt = _optimizer(config, params)
    _replay(params, opt, range(STEPS // 2))
    path = tmp_path / "optim.npz"
    np.savez(path, **opt.state_dict())
    resumed_params = [Parameter(p.data.copy()) for p in params]
    resumed = _optimizer(config, resumed_params)
    with np.load(path, allow_pickle=False) as saved:
        resumed.load_state_dict(saved)
    expected = _replay(params, opt, range(STEPS // 2, STEPS))
    actual = _replay(resumed_params, resumed, range(STEPS // 2, STEPS))
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)


def test_state_dict_is_a_copy_with_hyper_parameters():
    p = Parameter(np.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.full(3, 2.0)
    opt.step()
    state = opt.state_dict()
    assert set(state) == {
        "hyper.lr", "hyper.momentum", "hyper.dampening", "hyper.weight_decay",
        "hyper.nesterov", "state.0.momentum_buffer",
    }  # fmt: skip
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["state.0.momentum_buffer"][...] = 0
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], np.full(3, 2.0))


def test_load_state_dict_restores_hyper_parameters_and_casts_to_param_dtype():
    source = optim.Adam([Parameter(np.ones(2))], lr=0.5, betas=(0.5, 0.6), amsgrad=True)
    source.params[0].grad = np.ones(2)
    source.step()
    p32 = Parameter(np.ones(2, np.float32))
    target = optim.Adam([p32])
    target.load_state_dict(source.state_dict())
    assert (target.lr, target.betas, target.amsgrad) == (0.5, (0.5, 0.6), True)
    assert target.state[0]["step"] == 1
    assert target.state[0]["exp_avg"].dtype == np.float32


def _adam_state(**changes):
    opt = optim.Adam([Parameter(np.ones(2)), Parameter(np.ones(3))])
    for p in opt.params:
        p.grad = np.ones_like(p.data)
    opt.step()
    state = opt.state_dict()
    state.update(changes)
    return {k: v for k, v in state.items() if v is not None}


@pytest.mark.parametrize(
    "state, error, match",
    [
        (_adam_state(**{"hyper.lr": None}), KeyError, r"missing keys \['hyper.lr'\]"),
        (_adam_state(bogus=np.zeros(1)), KeyError, r"unexpected keys \['bogus'\]"),
        (optim.SGD([Parameter(np.ones(2))]).state_dict(), KeyError, "missing keys"),
        (_adam_state(**{"state.2.step": np.array(1)}), KeyError, "unexpected key 'state.2.step'"),
        (_adam_state(**{"state.0.sum": np.zeros(2)}), KeyError, "unexpected key 'state.0.sum'"),
        (
            _adam_state(**{"state.1.exp_avg": np.zeros(2)}),
            ValueError,
            r"state.1.exp_avg must be a float array of shape \(3,\)",
        ),
        (_adam_state(**{"state.0.step": np.array(-1)}), ValueError, "integer >= 0"),
        (_adam_state(**{"state.0.exp_avg": None}), ValueError, r"lacks state \['exp_avg'\]"),
        (_adam_state(**{"hyper.lr": np.array(-1.0)}), ValueError, "lr must be a number >= 0"),
        (_adam_state(**{"hyper.betas": np.array(0.9)}), ValueError, r"shape \(2,\)"),
        (_adam_state(**{"hyper.amsgrad": np.array(1.0)}), ValueError, "amsgrad must be a bool"),
    ],
)
def test_load_state_dict_rejects_bad_state(state, error, match):
    opt = optim.Adam([Parameter(np.ones(2)), Parameter(np.ones(3))], lr=0.1)
    before = opt.state_dict()
    with pytest.raises(error, match=match):
        opt.load_state_dict(state)
    assert opt.lr == 0.1 and opt.state_dict().keys() == before.keys()


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_parameters_without_grad_are_skipped_and_zero_grad_clears(name):
    params = [Parameter(np.ones(3)), Parameter(np.ones(2))]
    opt = getattr(optim, name)(params, lr=0.1)
    params[0].grad = np.ones(3)
    opt.step()
    assert not np.array_equal(params[0].data, np.ones(3))
    np.testing.assert_array_equal(params[1].data, np.ones(2))
    assert opt.state[1] == {}
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_lr_may_change_between_steps():
    p = Parameter(np.zeros(2))
    opt = optim.SGD([p], lr=1.0)
    for lr in (1.0, 0.5):
        opt.lr = lr
        p.grad = np.ones(2)
        opt.step()
    np.testing.assert_array_equal(p.data, [-1.5, -1.5])


@pytest.mark.parametrize(
    "grad, match",
    [
        (np.ones(3), r"params\[0\] \('w'\) has shape \(2,\), float64; its grad must match"),
        (np.ones(2, np.float32), "got shape \\(2,\\), float32"),
        ([1.0, 1.0], "got list"),
    ],
)
def test_bad_grad_is_rejected(grad, match):
    p = Parameter(np.ones(2), name="w")
    p.grad = grad
    with pytest.raises(ValueError, match=match):
        optim.Adam([p]).step()


P = [Parameter(np.ones(2))]


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: optim.SGD([]), ValueError, "empty parameter list"),
        (lambda: optim.SGD(P[0]), TypeError, "iterable of Parameter"),
        (lambda: optim.SGD([np.ones(2)]), TypeError, r"params\[0\] must be a Parameter"),
        (lambda: optim.SGD(P + P), ValueError, "more than once"),
        (lambda: optim.SGD(P, lr=-0.1), ValueError, r"SGD: lr must be a number >= 0.0, got -0.1"),
        (lambda: optim.SGD(P, lr=float("nan")), ValueError, "lr must be a number >= 0.0"),
        (lambda: optim.SGD(P, momentum=-1), ValueError, "momentum must be a number >= 0.0"),
        (lambda: optim.SGD(P, dampening=np.nan), ValueError, r"dampening must be a real number"),
        (lambda: optim.SGD(P, weight_decay=-1), ValueError, "weight_decay must be"),
        (lambda: optim.SGD(P, nesterov=True), ValueError, "nesterov=True requires momentum > 0"),
        (
            lambda: optim.SGD(P, momentum=0.9, dampening=0.1, nesterov=True),
            ValueError,
            "and dampening == 0",
        ),
        (lambda: optim.SGD(P, nesterov=1), ValueError, "nesterov must be a bool"),
        (lambda: optim.SGD(P, lr="0.1"), ValueError, "lr must be a number"),
        (lambda: optim.Adagrad(P, lr_decay=-1), ValueError, "Adagrad: lr_decay must be"),
        (lambda: optim.Adagrad(P, initial_accumulator_value=-1), ValueError, "initial_acc"),
        (lambda: optim.Adagrad(P, eps=-1e-10), ValueError, "eps must be a number >= 0.0"),
        (lambda: optim.RMSprop(P, alpha=-0.5), ValueError, "RMSprop: alpha must be"),
        (lambda: optim.RMSprop(P, momentum=np.nan), ValueError, "momentum must be"),
        (lambda: optim.RMSprop(P, centered=None), ValueError, "centered must be a bool"),
        (
            lambda: optim.Adam(P, betas=(1.0, 0.999)),
            ValueError,
            r"betas\[0\] must be .*\[0.0, 1.0\)",
        ),
        (lambda: optim.Adam(P, betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be"),
        (lambda: optim.Adam(P, betas=(0.9, np.nan)), ValueError, r"betas\[1\] must be"),
        (lambda: optim.Adam(P, betas=0.9), ValueError, "betas must be a pair"),
        (lambda: optim.Adam(P, eps=-1.0), ValueError, "Adam: eps must be"),
        (lambda: optim.AdamW(P, weight_decay=-1.0), ValueError, "AdamW: weight_decay must be"),
        (lambda: optim.AdamW(P, amsgrad="yes"), ValueError, "amsgrad must be a bool"),
    ],
)
def test_bad_hyper_parameters_are_rejected(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_generator_of_parameters_is_accepted_and_repr_shows_hyper_parameters():
    opt = optim.Adam(p for p in P)
    assert opt.params == P
    assert repr(opt) == (
        "Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False, "
        "decoupled_weight_decay=False)"
    )
