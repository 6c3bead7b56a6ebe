"""The kernel's half of the hidden tests: run the submitted classes on fixed inputs and report what they did.

Each graded cell's hidden region is one call, `observe("<grade id>", globals())`; when grading, the
grader adds this submission's salt. It runs the probes listed for that cell in `PROBES`, each on inputs
drawn from the row's seeds and the salt (`drawn`), and publishes one observation
per check as display data of type `MIME`. This module holds no expected value, tolerance or verdict:
the judge (`judge.py`, outside the kernel) computes the answers from the same inputs and decides.

A submission can read or replace all of this. That gains nothing: a check passes only when the
reported numbers are the ones a correct optimizer produces, and a missing report fails.
"""

import base64

import numpy as np

MIME = "application/vnd.tinytorch.observation+json"
SHAPES = [(7,), (4, 5), (4, 5), (2, 3, 4)]  # 1-d, 2-d, 3-d; two alike: state must not be shared
# The corners, each checked on its own so that a slip there costs only its own points:
# {corner: (shapes, dtype)}. "non-contiguous" parameters are strided views (see `_parameter`).
CORNERS = {
    "0-d": ([(), (), (3,)], "float32"),
    "non-contiguous": ([(4, 5), (3, 4)], "float32"),
    "float64": (SHAPES, "float64"),
    "float16": (SHAPES, "float16"),
}


def init(seed, shapes=SHAPES, dtype="float32", floor=0.0):
    "Starting values, one array per shape, |x| >= floor."
    rng = np.random.default_rng(seed)
    return [np.asarray(np.sign(x) * (floor + np.abs(x)), dtype=dtype) for x in (rng.normal(size=s) for s in shapes)]


# The smallest |g| of a bounded gradient: float16's v = (1 - beta2) g^2 then stays a normal number.
# The notebook's "float16 trap" states this number; tests/test_module_structure.py checks it does.
SMALLEST_GRADIENT = 0.5


def grads(seed, steps, shapes=SHAPES, scale=1.0, dtype="float32", bounded=False, floor=0.0):
    "A gradient for every parameter at every step, |g| >= floor * scale (`bounded`: floor SMALLEST_GRADIENT)."
    rng = np.random.default_rng(10_000 + seed)
    floor = SMALLEST_GRADIENT if bounded else floor
    out = []
    for _ in range(steps):
        gs = [rng.normal(size=s) for s in shapes]
        gs = [np.sign(g) * (floor + np.abs(g)) if floor else g for g in gs]
        out.append([np.asarray(scale * g, dtype=dtype) for g in gs])
    return out


def rule_inputs(seed, spec):
    """(initial values, gradients) of update-rule check `spec`, as both the harness and the judge build them.

    Both are bounded away from zero (|x|, |g| / scale >= SMALLEST_GRADIENT), so no draw puts a gradient, or a
    gradient plus its L2 term, near zero, where eps's place decides the step. With unbounded inputs, whether a
    draw held such a value decided whether eps-inside-the-root was caught: one bug scored 68.5 to 79.3 by
    draw. The checks that test eps put it beside the gradients on purpose ("tiny gradients")."""
    values = init(seed, floor=SMALLEST_GRADIENT)
    return values, grads(seed, spec["steps"], scale=spec["scale"], bounded=True)


def corner_inputs(seed, corner, steps):
    "(initial values, gradients) of a corner check, as both the harness and the judge build them."
    shapes, dtype = CORNERS[corner]
    return init(seed, shapes, dtype), grads(seed, steps, shapes, dtype=dtype, bounded=True)


def first_step_grads(seed):
    "Gradients bounded away from zero (|g| >= SMALLEST_GRADIENT), for the size of Adam's first step."
    return grads(seed, 1, bounded=True)[0]


# ---- what each graded cell's hidden region runs ------------------------------------------------
def rule(name, cls, hyper, steps=6, scale=1.0, seeds=(0, 1, 2)):
    "A check of the update rule: the parameters after each of `steps` steps, for each seed."
    return {
        "check": name,
        "probe": "trajectory",
        "cls": cls,
        "hyper": hyper,
        "steps": steps,
        "scale": scale,
        "seeds": list(seeds),
    }


def probe(name, kind, **args):
    return {"check": name, "probe": kind, **args}


def contract(cls, hyper, seed=21, steps=3, skip=1, as_array=2):
    "The step contract: parameter `skip` never gets a gradient, parameter `as_array` gets a bare numpy array."
    return probe(
        f"{cls} step contract", "contract", cls=cls, hyper=hyper, seed=seed, steps=steps, skip=skip, as_array=as_array
    )


def state_bytes(what, cls, hyper, seed=31, skip=1, dtype="float32"):
    "state_bytes before and after one step in which parameter `skip` gets no gradient (so no state)."
    return probe(f"state_bytes of {what}", "state-bytes", cls=cls, hyper=hyper, seed=seed, skip=skip, dtype=dtype)


def resume(cls, hyper, seed=42, steps=6, at=3):
    "`steps` steps straight through against a run resumed from a state_dict taken after step `at`."
    return probe(
        f"{cls} resumes from state_dict bit for bit", "resume", cls=cls, hyper=hyper, seed=seed, steps=steps, at=at
    )


CORNER_NAMES = {
    "0-d": "0-d parameters",
    "non-contiguous": "non-contiguous parameters",
    "float64": "float64 parameters",
    "float16": "float16 parameters",
}


def corner(cls, hyper, what, seed, steps=4):
    "A check of one corner: `cls` on parameters of one unusual shape, layout or dtype."
    return {
        "check": f"{cls} on {CORNER_NAMES[what]}",
        "probe": "corner",
        "cls": cls,
        "hyper": hyper,
        "corner": what,
        "seed": seed,
        "steps": steps,
    }


PROBES = {
    "test-optimizer-base": [
        probe("params become a list of the very tensors given", "base-params", seed=3),
        probe("an empty parameter list raises ValueError", "raises", call="empty"),
        probe("requires_grad=False raises ValueError naming the parameter", "raises", call="frozen"),
        probe("zero_grad clears Tensor and array gradients", "zero-grad", seed=3),
    ],
    "test-sgd-plain": [
        rule("SGD (lr=0.1)", "SGD", {"lr": 0.1}),
        rule("SGD (lr=0.03), large gradients", "SGD", {"lr": 0.03}, scale=10.0),
        rule("SGD with momentum=0", "SGD", {"lr": 0.1, "momentum": 0.0}),
    ],
    "test-sgd-momentum": [
        rule("SGD with momentum=0.9", "SGD", {"lr": 0.05, "momentum": 0.9}, steps=8),
        rule("SGD with momentum=0.5", "SGD", {"lr": 0.1, "momentum": 0.5}),
    ],
    "test-sgd-weight-decay": [
        rule("SGD with weight_decay=0.1", "SGD", {"lr": 0.1, "weight_decay": 0.1}),
        rule("SGD with momentum and weight_decay", "SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.2}, steps=8),
    ],
    "test-adam-update": [
        rule("Adam (defaults, lr=0.01)", "Adam", {"lr": 0.01}),
        rule("Adam (betas=(0.8, 0.99), eps=1e-3)", "Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-3}, steps=8),
        rule("Adam with tiny gradients (1e-6)", "Adam", {"lr": 0.01, "eps": 1e-8}, scale=1e-6),
    ],
    "test-adam-bias-correction": [
        probe("first Adam step (lr=0.01)", "first-step", seed=4, hyper={"lr": 0.01, "betas": (0.9, 0.999)}),
        probe(
            "first Adam step (lr=0.1, betas=(0.5, 0.9))", "first-step", seed=5, hyper={"lr": 0.1, "betas": (0.5, 0.9)}
        ),
        probe(
            "first Adam step (lr=0.003, betas=(0.95, 0.9999))",
            "first-step",
            seed=6,
            hyper={"lr": 0.003, "betas": (0.95, 0.9999)},
        ),
        rule("Adam, first three steps", "Adam", {"lr": 0.05, "betas": (0.9, 0.99)}, steps=3, seeds=(7, 8)),
    ],
    "test-adam-l2": [
        rule("Adam with weight_decay=0.1", "Adam", {"lr": 0.01, "weight_decay": 0.1}),
        rule("Adam with weight_decay=1.0, small gradients", "Adam", {"lr": 0.01, "weight_decay": 1.0}, scale=0.01),
    ],
    "test-adamw-decay": [
        probe("AdamW decay alone (lr=0.1, weight_decay=0.5)", "decay-only", seed=11, lr=0.1, weight_decay=0.5),
        probe("AdamW decay alone (lr=0.01, weight_decay=2.0)", "decay-only", seed=12, lr=0.01, weight_decay=2.0),
        rule("AdamW with weight_decay=0.02", "AdamW", {"lr": 0.01, "weight_decay": 0.02}),
        rule("AdamW with weight_decay=0.1, small gradients", "AdamW", {"lr": 0.01, "weight_decay": 0.1}, scale=0.01),
    ],
    "test-adamw-is-adam": [rule("AdamW with weight_decay=0", "AdamW", {"lr": 0.01, "weight_decay": 0.0})],
    "test-step-contract": [
        contract("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
        contract("Adam", {"lr": 0.01, "weight_decay": 0.1}),
        contract("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ],
    "test-state-bytes": [
        state_bytes("SGD without momentum", "SGD", {"lr": 0.1}),
        state_bytes("SGD with momentum", "SGD", {"lr": 0.1, "momentum": 0.9}),
        state_bytes("Adam", "Adam", {"lr": 0.01}),
        state_bytes("AdamW", "AdamW", {"lr": 0.01}),
        state_bytes("Adam on float64 parameters", "Adam", {"lr": 0.01}, dtype="float64"),
        state_bytes("SGD with momentum on float16 parameters", "SGD", {"lr": 0.1, "momentum": 0.9}, dtype="float16"),
    ],
    "test-memory-estimate": [
        probe(
            f"estimate_training_memory({n}, {kind!r}, momentum={mu}, bytes_per_value={b})",
            "estimate",
            args=[n, kind],
            kwargs={"momentum": mu, "bytes_per_value": b},
        )
        for n, kind, mu, b in [
            (10_000_000_000, "adam", 0.0, 4),
            (175_000_000_000, "AdamW", 0.0, 2),
            (12345, "sgd", 0.0, 4),
            (12345, "SGD", 0.9, 8),
            (0, "adam", 0.0, 4),
            (999, "sgd", 0.5, 2),
        ]
    ]
    + [
        probe(f"estimate_training_memory({n}, {kind!r}) raises ValueError", "raises", call="estimate", args=[n, kind])
        for kind, n in [("rmsprop", 10), ("adam", -1)]
    ],
    "test-checkpoint": [
        probe("momentum state: copies out, checked copies in", "momentum-state", seed=41),
        resume("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
        resume("Adam", {"lr": 0.01}),
        resume("AdamW", {"lr": 0.01}),
    ],
    "test-steplr": [
        probe(
            "StepLR(step_size=3, gamma=0.5) over 10 epochs", "schedule", base_lr=0.8, step_size=3, gamma=0.5, epochs=10
        ),
        probe(
            "StepLR(step_size=2) with the default gamma over 7 epochs", "schedule", base_lr=0.05, step_size=2, epochs=7
        ),
        probe(
            "StepLR resumed with last_epoch=5", "schedule", base_lr=0.3, step_size=3, gamma=0.25, epochs=6, resume_at=5
        ),
        probe(
            "get_last_lr() and last_epoch after each step()",
            "schedule-bookkeeping",
            base_lr=0.1,
            step_size=4,
            gamma=0.5,
            epochs=9,
        ),
    ],  # fmt: skip
    # SGD at weight_decay=1.0: decay then moves a weight about as far as its gradient does, so a decay bug
    # misses by more than float16's tolerance on every draw (at 0.1, a tenth of the move, on some draws only).
    # Adam and AdamW stay at 0.1: at 1.0 the correct Adam misses in float16, and Adam's own bugs come near it.
    "test-corner-cases": [
        corner(cls, hyper, what, seed=50 + 4 * k + j)
        for k, (cls, hyper) in enumerate(
            [
                ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 1.0}),
                ("Adam", {"lr": 0.1, "weight_decay": 0.1}),
                ("AdamW", {"lr": 0.1, "weight_decay": 0.1}),
            ]
        )
        for j, what in enumerate(CORNERS)
    ],
}


# ---- encoding --------------------------------------------------------------------------------
def encode(value):
    "JSON-safe form of a result: arrays become {dtype, shape, b64} (exact); containers recurse."
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        a = np.array(value, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        return {"__array__": a.dtype.str, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)[:200]


def emit(observation):
    "Publish one observation to the grader (display data that a notebook front end does not render)."
    from IPython.display import display

    display({MIME: observation}, raw=True)


# ---- the probes ------------------------------------------------------------------------------
def _data(p):
    return np.array(p.data, copy=True)


def _raw_grad(p):
    g = p.grad
    return None if g is None else np.array(getattr(g, "data", g), copy=True)


def _run(Tensor, opt, params, gradients) -> list:
    "Step `opt` once per gradient list; the parameters after each step."
    snaps = []
    for gs in gradients:
        for p, g in zip(params, gs):
            p.grad = Tensor(g, dtype=g.dtype)
        opt.step()
        snaps.append([_data(p) for p in params])
    return snaps


def _trajectory(ns, spec):
    Tensor, cls = ns["Tensor"], ns[spec["cls"]]
    runs = []
    for seed in spec["seeds"]:
        values, gradients = rule_inputs(seed, spec)
        params = [_parameter(Tensor, x) for x in values]
        runs.append(_run(Tensor, cls(params, **spec["hyper"]), params, gradients))
    return runs


def _parameter(Tensor, x, strided=False):
    "A trainable Tensor holding `x`; `strided`: its data is a transposed, strided view (not contiguous)."
    p = Tensor(x, requires_grad=True, dtype=x.dtype)
    if strided:
        view = np.zeros((2 * x.shape[1], x.shape[0]), dtype=x.dtype)[::2].T
        view[...] = x
        p.data = view
    return p


def _corner(ns, spec):
    Tensor, cls = ns["Tensor"], ns[spec["cls"]]
    values, gradients = corner_inputs(spec["seed"], spec["corner"], spec["steps"])
    params = [_parameter(Tensor, x, spec["corner"] == "non-contiguous") for x in values]
    opt = cls(params, **spec["hyper"])
    snaps = _run(Tensor, opt, params, gradients)
    buffers = [
        str(np.asarray(b).dtype)
        for name in getattr(opt, "state_names", ())
        for b in getattr(opt, name, None) or []
        if b is not None
    ]
    return {"run": snaps, "buffer_dtypes": buffers}


def _base_params(ns, spec):
    Tensor = ns["Tensor"]
    ps = [Tensor(x, requires_grad=True) for x in init(spec["seed"])]
    opt = ns["Optimizer"](p for p in ps)
    return {
        "is_list": isinstance(opt.params, list),
        "length": len(opt.params),
        "same": isinstance(opt.params, list) and all(a is b for a, b in zip(opt.params, ps)),
    }


def _raises(ns, spec):
    Tensor = ns["Tensor"]
    calls = {
        "empty": lambda: ns["Optimizer"]([]),
        "frozen": lambda: ns["Optimizer"](
            [Tensor(1.0, requires_grad=True), Tensor(2.0), Tensor(3.0, requires_grad=True)]
        ),
        "estimate": lambda: ns["estimate_training_memory"](*spec.get("args", [])),
    }
    try:
        calls[spec["call"]]()
    except Exception as exc:  # the judge decides whether it is the right exception
        return {"raised": type(exc).__name__, "message": str(exc)[:300]}
    return {"raised": None}


def _zero_grad(ns, spec):
    Tensor = ns["Tensor"]
    ps = [Tensor(x, requires_grad=True) for x in init(spec["seed"])]
    opt = ns["Optimizer"](ps)
    ps[0].grad, ps[1].grad, ps[2].grad = Tensor(ps[0].data), np.ones((4, 5)), None
    opt.zero_grad()
    return {"cleared": [p.grad is None for p in ps]}


def _first_step(ns, spec):
    Tensor = ns["Tensor"]
    ps = [Tensor(x, requires_grad=True) for x in init(spec["seed"])]
    for p, g in zip(ps, first_step_grads(spec["seed"])):
        p.grad = Tensor(g)
    ns["Adam"](ps, **spec["hyper"]).step()
    return {"after": [_data(p) for p in ps]}


def _decay_only(ns, spec):
    Tensor = ns["Tensor"]
    ps = [Tensor(x, requires_grad=True) for x in init(spec["seed"])]
    opt = ns["AdamW"](ps, lr=spec["lr"], weight_decay=spec["weight_decay"])
    for _ in range(4):
        for p in ps:
            p.grad = Tensor(np.zeros_like(p.data))
        opt.step()
    return {"after": [_data(p) for p in ps]}


def _contract(ns, spec):
    "Parameter `skip` never gets a gradient, parameter `as_array` gets a bare numpy array, the rest Tensors."
    Tensor = ns["Tensor"]
    ps = [Tensor(x, requires_grad=True) for x in init(spec["seed"])]
    opt = ns[spec["cls"]](ps, **spec["hyper"])
    changed = []
    for gs in grads(spec["seed"], spec["steps"]):
        for i, (p, g) in enumerate(zip(ps, gs)):
            p.grad = None if i == spec["skip"] else g.copy() if i == spec["as_array"] else Tensor(g)
        kept = [_raw_grad(p) for p in ps]
        opt.step()
        changed.append([k is not None and not np.array_equal(_raw_grad(p), k) for p, k in zip(ps, kept)])
    state = {
        a: getattr(opt, a)[spec["skip"]] is None
        for a in ("momentum_buffers", "m_buffers", "v_buffers")
        if hasattr(opt, a)
    }
    return {
        "grad_changed": changed,
        "after": [_data(p) for p in ps],
        "no_state_for_unused": state,
        "step_count": opt.step_count,
    }


def _state_bytes(ns, spec):
    "Parameter `skip` gets no gradient, so it must get no state."
    Tensor, dtype = ns["Tensor"], spec["dtype"]
    ps = [_parameter(Tensor, x) for x in init(spec["seed"], dtype=dtype)]
    opt = ns[spec["cls"]](ps, **spec["hyper"])
    before = opt.state_bytes()
    for i, (p, g) in enumerate(zip(ps, grads(spec["seed"], 1, dtype=dtype, bounded=True)[0])):
        p.grad = None if i == spec["skip"] else Tensor(g, dtype=g.dtype)
    opt.step()
    return {"before": before, "after": opt.state_bytes()}


def _estimate(ns, spec):
    return {"result": dict(ns["estimate_training_memory"](*spec["args"], **spec["kwargs"]))}


def _momentum_state(ns, spec):
    Tensor, SGD = ns["Tensor"], ns["SGD"]
    ps = [Tensor(x, requires_grad=True) for x in init(spec["seed"])]
    opt = SGD(ps, lr=0.1, momentum=0.9)
    out = {
        "has_momentum": [bool(opt.has_momentum()), bool(SGD(ps, lr=0.1).has_momentum())],
        "without_momentum": repr(SGD(ps, lr=0.1).get_momentum_state()),
    }
    for p, g in zip(ps, grads(spec["seed"], 1)[0]):
        p.grad = Tensor(g)
    opt.step()
    saved = opt.get_momentum_state()
    out["saved"] = [None if s is None else np.array(s) for s in saved]
    saved[2] += 1.0
    out["out_is_copy"] = not np.array_equal(opt.momentum_buffers[2], saved[2])
    fresh = SGD(ps, lr=0.1, momentum=0.9)
    fresh.set_momentum_state(saved)
    saved[2] += 1.0
    out["in_is_copy"] = not np.array_equal(fresh.momentum_buffers[2], saved[2])
    try:
        fresh.set_momentum_state(saved[:2])
        out["wrong_count"] = None
    except Exception as exc:
        out["wrong_count"] = type(exc).__name__
    return out


def _resume(ns, spec):
    "`steps` steps straight through, and the last ones resumed from a state_dict taken after step `at`."
    Tensor, cls = ns["Tensor"], ns[spec["cls"]]
    seq = grads(spec["seed"], spec["steps"])
    a = [Tensor(x, requires_grad=True) for x in init(spec["seed"])]
    opt_a = cls(a, **spec["hyper"])
    for k, gs in enumerate(seq):
        if k == spec["at"]:
            ckpt, weights = opt_a.state_dict(), [p.data.copy() for p in a]
        for p, g in zip(a, gs):
            p.grad = Tensor(g)
        opt_a.step()
    b = [Tensor(x, requires_grad=True) for x in weights]
    opt_b = cls(b, **spec["hyper"])
    opt_b.load_state_dict(ckpt)
    for gs in seq[spec["at"] :]:
        for p, g in zip(b, gs):
            p.grad = Tensor(g)
        opt_b.step()
    return {"straight": [_data(p) for p in a], "resumed": [_data(p) for p in b]}


class _LearningRateOnly:
    "An optimizer as a scheduler sees it: only `lr` (and the `initial_lr` a scheduler may add)."

    def __init__(self, lr):
        self.lr = lr


def _schedule(ns, spec):
    """The optimizer's lr at each of `epochs` epochs, from construction on, one step() between epochs;
    `resume_at`: a first scheduler runs that many epochs, then a new one resumes with last_epoch=resume_at."""
    StepLR, opt = ns["StepLR"], _LearningRateOnly(spec["base_lr"])
    gamma = {"gamma": spec["gamma"]} if "gamma" in spec else {}
    sched = StepLR(opt, spec["step_size"], **gamma)
    if spec.get("resume_at") is not None:
        for _ in range(spec["resume_at"]):
            sched.step()
        sched = StepLR(opt, spec["step_size"], last_epoch=spec["resume_at"], **gamma)
    seen = []
    for epoch in range(spec["epochs"]):
        if epoch:
            sched.step()
        seen.append({"lr": opt.lr} if spec["probe"] == "schedule" else
                    {"lr": opt.lr, "last_lr": list(sched.get_last_lr()), "last_epoch": sched.last_epoch})  # fmt: skip
    return seen


RUNNERS = {
    "trajectory": _trajectory,
    "base-params": _base_params,
    "raises": _raises,
    "zero-grad": _zero_grad,
    "first-step": _first_step,
    "decay-only": _decay_only,
    "contract": _contract,
    "state-bytes": _state_bytes,
    "estimate": _estimate,
    "momentum-state": _momentum_state,
    "resume": _resume,
    "corner": _corner,
    "schedule": _schedule,
    "schedule-bookkeeping": _schedule,
}


def draw(seed: int, salt: str | None) -> int:
    "The seed a check uses for submission `salt` (the grader's HMAC of the submission); `seed` itself without one."
    if salt is None:
        return seed
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{salt}:{seed}".encode()).digest()[:4], "big")


def drawn(spec: dict, salt: str | None) -> dict:
    "`spec` with its seeds drawn for submission `salt`: both the harness and the judge build inputs from this."
    spec = dict(spec)
    if "seed" in spec:
        spec["seed"] = draw(spec["seed"], salt)
    if "seeds" in spec:
        spec["seeds"] = [draw(s, salt) for s in spec["seeds"]]
    return spec


def observe(cell_id, namespace, salt=None, publish=None):
    """Run every probe of graded cell `cell_id` on the classes in `namespace`; publish one observation each.

    `salt` comes from the grader when the cell runs (see `grading/preprocessors.DrawHiddenInputs`): the
    inputs are drawn for this submission, so outputs recorded for other inputs are worth nothing."""
    publish = publish or emit
    for spec in (drawn(s, salt) for s in PROBES[cell_id]):
        try:
            result = {"value": encode(RUNNERS[spec["probe"]](namespace, spec))}
        except Exception as exc:  # one failing probe costs its own check only
            result = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        publish({"cell": cell_id, "check": spec["check"], **result})
