"""tinytorch.core.optimizers as library code: validation, the step contract, memory, checkpoints."""

import numpy as np
import pytest
from hypothesis import given, settings

from helpers import seeds, shapes
from tinytorch.core.optimizers import SGD, Adam, AdamW, Optimizer, StepLR, estimate_training_memory
from tinytorch.core.tensor import Tensor

MAKERS = {
    "sgd": lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    "adam": lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
    "adamw": lambda ps: AdamW(ps, lr=0.01),
}


def params(seed=0, shapes_=((), (3,), (2, 4), (2, 2, 3))):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.normal(size=s), requires_grad=True) for s in shapes_]


def give_grads(ps, seed):
    rng = np.random.default_rng(seed)
    for p in ps:
        p.grad = Tensor(rng.normal(size=p.shape))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: SGD(p, momentum=-0.5), "Invalid momentum: -0.5"),
        (lambda p: SGD(p, weight_decay=-1), "Invalid weight_decay: -1"),
        (lambda p: Adam(p, lr=float("nan")), "Invalid learning rate: nan"),
        (lambda p: Adam(p, betas=(1.0, 0.999)), "Invalid beta1: 1.0"),
        (lambda p: Adam(p, betas=(0.9, -0.1)), "Invalid beta2: -0.1"),
        (lambda p: AdamW(p, eps=-1e-8), "Invalid eps: -1e-08"),
        (lambda p: AdamW(p, weight_decay=-0.01), "Invalid weight_decay: -0.01"),
    ],
)
def test_constructors_name_the_bad_value(make, message):
    with pytest.raises(ValueError) as err:
        make([Tensor(1.0, requires_grad=True)])
    assert str(err.value) == message


def test_parameter_list_is_checked():
    with pytest.raises(ValueError, match="empty"):
        SGD([])
    with pytest.raises(ValueError, match="Parameter 1"):
        Adam([Tensor(1.0, requires_grad=True), Tensor(2.0)])
    assert Optimizer(p for p in params()).step_count == 0
    with pytest.raises(NotImplementedError):
        Optimizer(params()).step()


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_gradient_shape_mismatch_names_the_parameter(kind):
    ps = params()
    give_grads(ps, 1)
    ps[2].grad = Tensor(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="parameter 2"):
        MAKERS[kind](ps).step()


@pytest.mark.parametrize("kind", sorted(MAKERS))
@settings(max_examples=15, deadline=None)
@given(shape=shapes, seed=seeds)
def test_step_contract(kind, shape, seed):
    "Skips grad=None (and its state), never writes a gradient, keeps dtype, accepts arrays."
    rng = np.random.default_rng(seed)
    moving, frozen = (
        Tensor(rng.normal(size=shape), requires_grad=True),
        Tensor(rng.normal(size=shape), requires_grad=True),
    )
    frozen_before = frozen.data.copy()
    opt = MAKERS[kind]([frozen, moving])
    for _ in range(3):
        grad = rng.normal(size=shape).astype(np.float32)
        moving.grad = grad  # a plain numpy array
        opt.step()
        assert np.array_equal(moving.grad, grad.copy()) and moving.grad is grad
    assert np.array_equal(frozen.data, frozen_before)
    assert all(getattr(opt, name)[0] is None for name in opt.state_names)
    assert moving.dtype == np.float32 and frozen.dtype == np.float32
    assert opt.step_count == 3


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_float64_parameters_stay_float64(kind):
    p = Tensor(np.ones(3), requires_grad=True, dtype=np.float64)
    p.grad = np.full(3, 0.5)
    opt = MAKERS[kind]([p])
    opt.step()
    assert p.dtype == np.float64 and all(getattr(opt, n)[0].dtype == np.float64 for n in opt.state_names)


def test_zero_grad_sets_none():
    ps = params()
    give_grads(ps, 0)
    SGD(ps).zero_grad()
    assert all(p.grad is None for p in ps)


@pytest.mark.parametrize("kind, buffers", [("sgd", 1), ("adam", 2), ("adamw", 2)])
def test_state_bytes_lazy_then_exact(kind, buffers):
    ps = params()
    opt = MAKERS[kind](ps)
    assert opt.state_bytes() == 0
    give_grads(ps, 0)
    ps[1].grad = None
    opt.step()
    trained = sum(p.data.nbytes for i, p in enumerate(ps) if i != 1)
    assert opt.state_bytes() == buffers * trained
    assert SGD(params(), lr=0.1).state_bytes() == 0


def test_memory_estimate_reproduces_the_seed_numbers():
    gib = 2**30
    ten_b = estimate_training_memory(10_000_000_000, "adam")
    assert round(ten_b["params"] / gib, 2) == 37.25
    assert round(ten_b["optimizer_state"] / gib, 2) == 74.51
    assert round((ten_b["params"] + ten_b["optimizer_state"]) / gib, 2) == 111.76
    assert round(estimate_training_memory(175_000_000_000)["params"] / gib, 1) == 651.9
    assert estimate_training_memory(10, "SGD") == {"params": 40, "grads": 40, "optimizer_state": 0, "total": 80}
    assert estimate_training_memory(10, "sgd", momentum=0.9)["optimizer_state"] == 40
    with pytest.raises(ValueError, match="rmsprop"):
        estimate_training_memory(10, "rmsprop")
    with pytest.raises(ValueError, match="-5"):
        estimate_training_memory(-5)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_resume_from_state_dict_is_bit_identical(kind):
    ps = params(3)
    opt = MAKERS[kind](ps)
    for s in range(4):
        give_grads(ps, s)
        opt.step()
    state, weights = opt.state_dict(), [p.data.copy() for p in ps]
    resumed = [Tensor(w, requires_grad=True) for w in weights]
    opt2 = MAKERS[kind](resumed)
    opt2.load_state_dict(state)
    for s in range(4, 9):
        give_grads(ps, s)
        give_grads(resumed, s)
        opt.step()
        opt2.step()
    assert all(np.array_equal(a.data, b.data) for a, b in zip(ps, resumed))
    assert opt2.step_count == 9


def test_state_dict_is_a_copy_and_load_checks_kind_length_shape_dtype():
    ps = params()
    opt = Adam(ps, lr=0.01)
    give_grads(ps, 0)
    opt.step()
    state = opt.state_dict()
    state["state"]["m_buffers"][1] += 1.0
    assert not np.array_equal(opt.m_buffers[1], state["state"]["m_buffers"][1])
    assert state["optimizer"] == "Adam" and state["hyperparameters"]["lr"] == 0.01 and state["step_count"] == 1
    with pytest.raises(ValueError, match="'Adam', not 'AdamW'"):
        AdamW(ps).load_state_dict(state)
    with pytest.raises(ValueError, match="expected 4 buffers, got 3"):
        Adam(ps).load_state_dict({**state, "state": {k: v[:3] for k, v in state["state"].items()}})
    bad = {**state, "state": {**state["state"], "v_buffers": [None, np.zeros(4, np.float32), None, None]}}
    with pytest.raises(ValueError, match="buffer 1"):
        Adam(ps).load_state_dict(bad)
    bad = {**state, "state": {**state["state"], "v_buffers": [None, np.zeros(3), None, None]}}
    with pytest.raises(ValueError, match="float64"):
        Adam(ps).load_state_dict(bad)
    fresh = Adam(ps, lr=0.5)
    fresh.load_state_dict(state)
    assert fresh.lr == 0.01 and fresh.step_count == 1


def test_momentum_state_round_trip():
    ps = params()
    opt = SGD(ps, lr=0.1, momentum=0.9)
    assert opt.has_momentum() and opt.get_momentum_state() == [None] * 4
    assert SGD(ps).get_momentum_state() is None and not SGD(ps).has_momentum()
    give_grads(ps, 0)
    opt.step()
    saved = opt.get_momentum_state()
    other = SGD(ps, lr=0.1, momentum=0.9)
    other.set_momentum_state(saved)
    saved[0] += 1
    assert np.array_equal(other.momentum_buffers[0], opt.momentum_buffers[0])
    with pytest.raises(ValueError, match="expected 4"):
        other.set_momentum_state(saved[:2])
    other.set_momentum_state(None)
    assert other.momentum_buffers == [None] * 4


def test_trains_a_model_end_to_end():
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.data.loader import make_spirals

    x, y = make_spirals(50, noise=0.1, seed=0)
    for make in (lambda p: SGD(p, lr=0.05, momentum=0.9), lambda p: Adam(p, lr=0.01), lambda p: AdamW(p, lr=0.01)):
        model = Sequential(Linear(2, 32, seed=1), ReLU(), Linear(32, 2, seed=2))
        opt, losses = make(model.parameters()), []
        for _ in range(150):
            loss = CrossEntropyLoss()(model(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.9 * losses[0]


def test_blocks_yields_writable_views_of_every_array():
    from tinytorch.core.optimizers import blocks

    a, b = np.arange(10.0).reshape(2, 5), np.ones((2, 5))
    pieces = list(blocks(a, None, b, size=4))
    assert [p[0].size for p in pieces] == [4, 4, 2] and all(p[1] is None for p in pieces)
    for x, _, y in pieces:
        x += y
    np.testing.assert_array_equal(a, np.arange(1.0, 11.0).reshape(2, 5))
    strided = np.zeros((3, 4)).T  # no flat view: one whole block, still written through
    [(view,)] = list(blocks(strided, size=2))
    view += 1
    assert strided.sum() == 12


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_blocked_step_equals_the_step_of_small_pieces(kind):
    "A parameter spanning several cache blocks moves bit for bit as if it were cut into small ones."
    from tinytorch.core.optimizers import BLOCK

    rng = np.random.default_rng(7)
    n = 2 * BLOCK + 17
    start, grads = rng.normal(size=n).astype(np.float32), rng.normal(size=(3, n)).astype(np.float32)
    big = [Tensor(start.copy(), requires_grad=True)]
    cuts = [0, 5, BLOCK - 3, BLOCK + 100, n]
    small = [Tensor(start[a:b].copy(), requires_grad=True) for a, b in zip(cuts, cuts[1:])]
    opt_big, opt_small = MAKERS[kind](big), MAKERS[kind](small)
    for g in grads:
        big[0].grad = Tensor(g)
        for p, a, b in zip(small, cuts, cuts[1:]):
            p.grad = Tensor(g[a:b])
        opt_big.step()
        opt_small.step()
    np.testing.assert_array_equal(big[0].data, np.concatenate([p.data for p in small]))


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_non_contiguous_parameter_is_updated(kind):
    rng = np.random.default_rng(3)
    values, grad = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    view, dense = Tensor(values), Tensor(values.T.copy(), requires_grad=True)
    view.data, view.requires_grad = values.T, True  # a transposed view, not C-contiguous
    for p in (view, dense):
        p.grad = Tensor(grad)
        opt = MAKERS[kind]([p])
        opt.step()
        opt.step()
    np.testing.assert_array_equal(view.data, dense.data)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_the_step_is_bit_identical_on_one_thread_and_many(kind, monkeypatch):
    "Each block is updated by the same operations whichever thread runs it: 1, 2 or 3 threads agree exactly."
    import tinytorch.core.optimizers as package

    finals = {}
    for threads in (1, 2, 3):
        monkeypatch.setattr(package, "STEP_THREADS", threads)
        ps = params(7, ((), (5 * package.BLOCK + 123,), (300, 700)))
        opt = MAKERS[kind](ps)
        for step in range(3):
            give_grads(ps, 100 + step)
            opt.step()
        finals[threads] = [p.data.copy() for p in ps]
        assert (threads in package._pools) == (threads > 1), "large parameters should use the thread pool"
    for threads in (2, 3):
        assert all(np.array_equal(a, b) for a, b in zip(finals[1], finals[threads])), f"{threads} threads differ"


def test_small_parameters_stay_on_the_calling_thread():
    import threading

    from tinytorch.core.optimizers import BLOCK, for_each_block

    seen = set()
    for_each_block(lambda *views: seen.add(threading.get_ident()), np.zeros(4096, np.float32), threads=2)
    assert seen == {threading.get_ident()}
    seen.clear()
    for_each_block(lambda *views: seen.add(threading.get_ident()), np.zeros(4 * BLOCK, np.float32), threads=2)
    assert seen and threading.get_ident() not in seen


def lrs(scheduler, epochs):
    "The rate of each epoch as a training loop reads it: read, then step()."
    out = []
    for _ in range(epochs):
        out.append(scheduler.optimizer.lr)
        scheduler.step()
    return out


def test_steplr_decays_every_step_size_epochs_from_the_starting_rate():
    opt = SGD(params(), lr=0.8)
    sched = StepLR(opt, step_size=3, gamma=0.5)
    assert sched.last_epoch == 0 and sched.get_last_lr() == [0.8] and opt.initial_lr == 0.8
    assert lrs(sched, 10) == [0.8] * 3 + [0.4] * 3 + [0.2] * 3 + [0.1]
    assert sched.last_epoch == 10 and sched.get_last_lr() == [opt.lr] == [0.1]
    assert lrs(StepLR(SGD(params(), lr=1.0), step_size=1), 3) == pytest.approx([1.0, 0.1, 0.01])


def test_steplr_resumes_with_last_epoch_and_from_its_state_dict():
    straight = lrs(StepLR(SGD(params(), lr=0.3), step_size=3, gamma=0.25), 12)
    opt = SGD(params(), lr=0.3)
    first = StepLR(opt, step_size=3, gamma=0.25)
    assert lrs(first, 6) == straight[:6]  # the optimizer now holds epoch 6's rate, and initial_lr
    saved, rate = first.state_dict(), opt.lr
    resumed = StepLR(opt, step_size=3, gamma=0.25, last_epoch=first.last_epoch)  # goes on at epoch 7
    assert resumed.last_epoch == 7 and lrs(resumed, 5) == straight[7:]
    opt2 = SGD(params(), lr=99.0)
    sched2 = StepLR(opt2, step_size=3, gamma=0.25)
    sched2.load_state_dict(saved)
    opt2.lr = rate  # the optimizer's own checkpoint brings its rate back
    assert "optimizer" not in saved and lrs(sched2, 6) == straight[6:]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda o: StepLR(o, step_size=0), "Invalid step_size: 0"),
        (lambda o: StepLR(o, step_size=2.5), "Invalid step_size: 2.5"),
        (lambda o: StepLR(o, step_size=2, gamma=-0.5), "Invalid gamma: -0.5"),
        (lambda o: StepLR(o, step_size=2, last_epoch=4), "Invalid last_epoch: 4"),
    ],
)
def test_steplr_names_the_bad_value(make, message):
    with pytest.raises(ValueError) as err:
        make(SGD(params(), lr=0.1))
    assert str(err.value).startswith(message)
