"""fastnet.models: the builders' options."""

import numpy as np
import pytest

from fastnet import models
from fastnet.layers import Dropout


@pytest.mark.parametrize("name", models.WITH_DROPOUT)
def test_dropout_rate_reaches_every_dropout_layer(name):
    rates = {
        rate: [m.p for m in models.build(name, np.random.default_rng(0), dropout=rate)
               if isinstance(m, Dropout)]
        for rate in (None, 0.0, 0.2)
    }  # fmt: skip
    assert rates == {None: [0.5, 0.5], 0.0: [0.0, 0.0], 0.2: [0.2, 0.2]}


def test_dropout_rate_does_not_change_the_initial_weights():
    a = models.build("vgg-bn", np.random.default_rng(7)).state_dict()
    b = models.build("vgg-bn", np.random.default_rng(7), dropout=0.1).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("name", sorted(set(models.MODELS) - set(models.WITH_DROPOUT)))
def test_dropout_rate_for_a_model_without_dropout_is_an_error(name):
    with pytest.raises(ValueError, match=f"model '{name}' has no Dropout layers"):
        models.build(name, np.random.default_rng(0), dropout=0.2)
