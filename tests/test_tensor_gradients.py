"""Every differentiable op's backward rule against central finite differences (float64, Hypothesis shapes)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import away_from_zero, leaf, nonempty_shapes, seeds, shapes
from tinytorch.core.activations import ReLU, Sigmoid, Softmax, Tanh, log_softmax
from tinytorch.core.autograd import gradcheck
from tinytorch.core.losses import CrossEntropyLoss, MSELoss
from tinytorch.core.tensor import Tensor

FAST = settings(max_examples=25, deadline=None)

UNARY = {
    "neg": lambda x: -x,
    "pow3": lambda x: x**3,
    "exp": lambda x: x.exp(),
    "sum": lambda x: x.sum(),
    "mean": lambda x: x.mean(),
    "reshape": lambda x: x.reshape(-1),
    "transpose": lambda x: x.transpose(),
    "T": lambda x: x.T,
    "relu": ReLU(),
    "sigmoid": Sigmoid(),
    "tanh": Tanh(),
    "scalar_rsub": lambda x: 2.0 - x,
    "scalar_mul": lambda x: 3.0 * x,
}


@pytest.mark.parametrize("name", sorted(UNARY))
@FAST
@given(shape=shapes, seed=seeds)
def test_unary_ops(name, shape, seed):
    rng = np.random.default_rng(seed)
    x = Tensor(away_from_zero(rng, shape), requires_grad=True, dtype=np.float64)
    assert gradcheck(UNARY[name], [x])


@FAST
@given(shape=shapes, seed=seeds)
def test_log_and_division_on_positive_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    x, y = leaf(rng, shape, 0.5, 2.0), leaf(rng, shape, 0.5, 2.0)
    assert gradcheck(lambda a: a.log(), [x])
    assert gradcheck(lambda a, b: a / b, [x, y])
    assert gradcheck(lambda b: 1.0 / b, [y])


BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}


@pytest.mark.parametrize("name", sorted(BINARY))
@FAST
@given(shape=nonempty_shapes, seed=seeds, data=st.data())
def test_broadcasting_binary_ops(name, shape, seed, data):
    "The second operand is broadcast: some of its axes are 1 or missing."
    rng = np.random.default_rng(seed)
    keep = data.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    small = tuple(s if k else 1 for s, k in zip(shape, keep))[data.draw(st.integers(0, len(shape))) :]
    a, b = leaf(rng, shape), leaf(rng, small)
    assert gradcheck(BINARY[name], [a, b])


@FAST
@given(
    seed=seeds, n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4), batch=st.sampled_from([(), (2,), (3, 1)])
)
def test_matmul_2d_and_batched(seed, n, k, m, batch):
    rng = np.random.default_rng(seed)
    a, b = leaf(rng, batch + (n, k)), leaf(rng, (k, m))
    assert gradcheck(lambda x, y: x @ y, [a, b])


@FAST
@given(seed=seeds, n=st.integers(1, 4), k=st.integers(1, 4))
def test_matmul_with_vectors(seed, n, k):
    rng = np.random.default_rng(seed)
    v, w, mat = leaf(rng, (k,)), leaf(rng, (k,)), leaf(rng, (k, n))
    assert gradcheck(lambda x, y: x @ y, [v, mat])
    assert gradcheck(lambda x, y: x @ y, [leaf(rng, (n, k)), v])
    assert gradcheck(lambda x, y: x @ y, [v, w])


@FAST
@given(shape=nonempty_shapes, seed=seeds, keepdims=st.booleans(), data=st.data())
def test_reductions_over_an_axis(shape, seed, keepdims, data):
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = leaf(rng, shape)
    assert gradcheck(lambda t: t.sum(axis=axis, keepdims=keepdims), [x])
    assert gradcheck(lambda t: t.mean(axis=axis, keepdims=keepdims), [x])


@FAST
@given(shape=nonempty_shapes, seed=seeds, data=st.data())
def test_transpose_with_axes(shape, seed, data):
    rng = np.random.default_rng(seed)
    axes = data.draw(st.permutations(range(len(shape))))
    x = leaf(rng, shape)
    weights = Tensor(rng.normal(size=x.data.transpose(axes).shape), dtype=np.float64)  # tells axes apart
    assert gradcheck(lambda t: t.transpose(*axes) * weights, [x])


@FAST
@given(seed=seeds, n=st.integers(1, 5), c=st.integers(2, 5))
def test_softmax_log_softmax_and_losses(seed, n, c):
    rng = np.random.default_rng(seed)
    logits, weights = leaf(rng, (n, c), -3, 3), Tensor(rng.normal(size=(n, c)), dtype=np.float64)
    assert gradcheck(lambda z: Softmax()(z) * weights, [logits])
    assert gradcheck(lambda z: log_softmax(z) * weights, [logits])
    labels = rng.integers(0, c, size=n)
    assert gradcheck(lambda z: CrossEntropyLoss()(z, labels), [logits])
    target = Tensor(rng.normal(size=(n, c)), dtype=np.float64)
    assert gradcheck(lambda z: MSELoss()(z, target), [logits])


def test_gradcheck_catches_a_wrong_rule():
    wrong_square = lambda t: Tensor.from_op(t.data**2, (t,), lambda g: (g * t.data,))
    with pytest.raises(AssertionError, match="input 0"):
        gradcheck(wrong_square, [Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)])


def test_gradients_accumulate_and_reach_only_leaves():
    w = Tensor([1.0, 2.0], requires_grad=True)
    hidden = w * 3.0
    hidden.sum().backward()
    hidden.sum().backward()
    assert w.grad.data.tolist() == [6.0, 6.0]
    assert hidden.grad is None


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_backward_rejects_non_scalars_without_a_gradient():
    with pytest.raises(RuntimeError, match="shape"):
        (Tensor([1.0, 2.0], requires_grad=True) * 2.0).backward()


def test_float32_is_the_default_and_is_kept():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.0 + 1.0) / 3.0
    assert x.dtype == np.float32 and y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
