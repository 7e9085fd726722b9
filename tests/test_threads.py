import subprocess
import sys

import pytest

from kerasrnn.trainers.threads import training_threads


@pytest.mark.parametrize("cores, expected", [(1, (1, 1)), (2, (1, 2)), (3, (1, 2)), (8, (4, 2)), (16, (8, 2))])
def test_training_threads_split_the_cores_between_two_op_streams(cores, expected):
    assert training_threads(cores) == expected


def test_zero_cores_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        training_threads(0)


def test_configure_threads_sets_tensorflow_before_it_starts_and_leaves_it_after():
    code = (
        "import tensorflow as tf\n"
        "from kerasrnn.trainers.threads import configure_threads\n"
        "print(configure_threads(8))\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads())\n"
        "tf.constant(1.0) + 1.0\n"
        "print(configure_threads(2))\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:4] == ["(4, 2)", "4 2", "None", "4 2"]
