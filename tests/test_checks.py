"""faceexp.core.checks: the shared argument checks and their one message style."""
from __future__ import annotations

import numpy as np
import pytest

from faceexp.core import checks


def test_accepted_values():
    assert checks.positive_int(np.int64(3), "n") == 3
    assert checks.positive_int(2, "n", minimum=2) == 2
    assert checks.finite_real(np.float32(0.5), "x") == 0.5
    assert checks.seed(7) == 7
    assert 0 <= checks.seed(None, fresh=True) < 2 ** 63
    assert checks.one_of("a", ("a", "b"), "mode") == "a"


@pytest.mark.parametrize("call, message", [
    (lambda: checks.positive_int(0, "n"), "n must be an int >= 1, got 0"),
    (lambda: checks.positive_int(True, "n"), "n must be an int >= 1, got True"),
    (lambda: checks.positive_int(2.0, "n", 2), "n must be an int >= 2, got 2.0"),
    (lambda: checks.finite_real(float("nan"), "x"), "x must be a finite number, got nan"),
    (lambda: checks.seed(-1), "seed must be a non-negative int, got -1"),
    (lambda: checks.seed(None), "seed must be a non-negative int, got None"),
    (lambda: checks.seed(-1, "seeds", fresh=True), "seeds must be a non-negative int or None"),
    (lambda: checks.one_of("c", ("a", "b"), "mode"), r"mode must be one of \('a', 'b'\), got 'c'"),
])
def test_messages_name_the_parameter_and_what_is_accepted(call, message):
    with pytest.raises(ValueError, match=message):
        call()
