import numpy as np

from kerasrnn.layers import MaskedMeanMaxPooling
from tests.test_case import assert_all_close


def test_mean_and_max_over_valid_steps_only():
    x = np.array([[[1.0, -5.0], [3.0, -1.0], [100.0, 100.0]], [[-2.0, 0.0], [9.0, 9.0], [9.0, 9.0]]], "float32")
    mask = np.array([[True, True, False], [True, False, False]])
    out = MaskedMeanMaxPooling()(x, mask=mask).numpy()
    assert_all_close(out, [[2.0, -3.0, 3.0, -1.0], [-2.0, 0.0, -2.0, 0.0]])


def test_without_mask_pools_every_step():
    x = np.arange(6, dtype="float32").reshape(1, 3, 2)
    assert_all_close(MaskedMeanMaxPooling()(x).numpy(), [[2.0, 3.0, 4.0, 5.0]])
