"""Layers, losses and the data pipeline behave as later modules expect."""

import numpy as np
import pytest

from tinytorch.core.activations import ReLU, Softmax
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.core.losses import CrossEntropyLoss, MSELoss
from tinytorch.core.tensor import Tensor
from tinytorch.data.loader import DataLoader, TensorDataset, make_spirals


def test_linear_is_seedable_and_scaled():
    a, b = Linear(64, 8, seed=3), Linear(64, 8, seed=3)
    assert np.array_equal(a.weight.data, b.weight.data)
    assert np.abs(a.weight.data).max() <= 1 / 8
    assert not np.array_equal(a.weight.data, Linear(64, 8, seed=4).weight.data)
    assert Linear(3, 2, bias=False).parameters()[0].shape == (3, 2)


def test_sequential_collects_parameters_in_order():
    model = Sequential(Linear(2, 3, seed=0), ReLU(), Linear(3, 1, seed=1))
    assert [p.shape for p in model.parameters()] == [(2, 3), (3,), (3, 1), (1,)]
    assert all(p.requires_grad for p in model.parameters())
    assert isinstance(model, Module)


def test_a_model_learns_with_manual_descent():
    x, y = make_spirals(20, seed=0)
    model = Sequential(Linear(2, 16, seed=0), ReLU(), Linear(16, 2, seed=1))
    first = None
    for _ in range(50):
        loss = CrossEntropyLoss()(model(Tensor(x)), y)
        first = first or loss.item()
        for p in model.parameters():
            p.grad = None
        loss.backward()
        for p in model.parameters():
            p.data -= 0.5 * p.grad.data
    assert loss.item() < first


def test_cross_entropy_is_stable_and_checks_labels():
    assert np.isfinite(CrossEntropyLoss()(Tensor([[1e4, -1e4]]), [1]).item())
    with pytest.raises(ValueError, match="targets"):
        CrossEntropyLoss()(Tensor(np.zeros((2, 3))), [0, 3])


def test_mse_and_softmax_values():
    assert MSELoss()(Tensor([1.0, 3.0]), Tensor([0.0, 0.0])).item() == pytest.approx(5.0)
    assert Softmax()(Tensor([[0.0, 0.0]])).data.tolist() == [[0.5, 0.5]]


def test_dataloader_batches_shuffles_reproducibly_and_keeps_labels_integer():
    data = TensorDataset(np.arange(14.0).reshape(7, 2), np.arange(7))
    loader = DataLoader(data, batch_size=3, shuffle=True, seed=1)
    epoch1, epoch2 = [b[1].tolist() for b in loader], [b[1].tolist() for b in loader]
    assert [len(b) for b in epoch1] == [3, 3, 1] and len(loader) == 3
    assert sorted(sum(epoch1, [])) == list(range(7)) and epoch1 != epoch2
    again = DataLoader(data, batch_size=3, shuffle=True, seed=1)
    assert [b[1].tolist() for b in again] == epoch1
    xb, yb = next(iter(DataLoader(data, batch_size=2)))
    assert isinstance(xb, Tensor) and xb.dtype == np.float32 and yb.dtype.kind == "i"


def test_dataset_lengths_must_match_and_batch_size_positive():
    with pytest.raises(ValueError, match="same length"):
        TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=0)


def test_tensor_data_is_always_an_array():
    t = Tensor(1.0)
    t.data = t.data * np.float32(2)  # numpy returns a scalar here, not an array
    assert isinstance(t.data, np.ndarray) and t.data.dtype == np.float32 and t.data.shape == ()
