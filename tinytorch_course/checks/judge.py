"""The trusted half of the hidden tests: references, tolerances and the pass/fail decision (instructor only).

The grading kernel runs `harness.observe`, which reports what the submitted classes did on fixed
inputs. This module, which runs in the grading process and never in the kernel, rebuilds the same
inputs, computes the expected results independently in float64, and judges each report. A graded
test cell earns its points in proportion to the checks that pass, and 0 if its visible part fails.
Nothing the kernel prints counts: not a number, not the absence of an error, not stderr.
"""

import base64
import math

import numpy as np

from . import harness

TOLERANCE = 1e-3  # relative to how far the reference moved a parameter; see tests/calibration.py
TOLERANCES = {"float16": 0.25}  # float16 keeps ~3 digits: four steps round to ~2% of the distance moved
KINDS = {"SGD": ("sgd",), "Adam": ("adam",), "AdamW": ("adamw", "adamw-after")}  # either decay order is right
HINTS = {
    "SGD (lr=0.1)": "Check the sign and size of the step.",
    "SGD (lr=0.03), large gradients": "Check the step uses lr.",
    "SGD with momentum=0": "momentum=0 should be plain SGD.",
    "SGD with momentum=0.9": "Check how the velocity accumulates "
    "(no dampening: v = mu*v + g, and v = g on the first step).",
    "SGD with momentum=0.5": "Check each parameter has its own velocity.",
    "SGD with weight_decay=0.1": "Weight decay should add wd * p to the gradient.",
    "SGD with momentum and weight_decay": "The decayed gradient should feed the velocity.",
    "Adam (defaults, lr=0.01)": "Compare your moment updates and the final step with the formulas above.",
    "Adam (betas=(0.8, 0.99), eps=1e-3)": "Check that beta1, beta2 and eps are each used where they belong.",
    "Adam with tiny gradients (1e-6)": "eps belongs outside the square root: sqrt(v_hat) + eps.",
    "Adam, first three steps": "Early steps depend on the bias correction with t counted from 1.",
    "Adam with weight_decay=0.1": "Adam adds weight_decay * p to the gradient before updating m and v.",
    "Adam with weight_decay=1.0, small gradients": "The L2 term should reach both moments.",
    "AdamW with weight_decay=0.02": "The moments should see the raw gradient; the decay acts on the weights.",
    "AdamW with weight_decay=0.1, small gradients": "Decoupled decay does not depend on the gradient's size.",
    "AdamW with weight_decay=0": "Without decay AdamW should reproduce Adam.",
}
_DTYPES = {"<f2", "<f4", "<f8", "<i4", "<i8", "<u4", "<u8", "|b1"}


class Unreadable(ValueError):
    "A report that is not what the harness sends."


def decode(value, budget=None):
    "The inverse of harness.encode, refusing anything the harness would not send."
    budget = budget if budget is not None else [2_000_000]
    if isinstance(value, dict) and "__array__" in value:
        dtype, shape = value.get("__array__"), value.get("shape")
        if (
            dtype not in _DTYPES
            or not isinstance(shape, list)
            or len(shape) > 4
            or not all(isinstance(n, int) and 0 <= n <= 10**6 for n in shape)
        ):
            raise Unreadable("an array of an unexpected kind")
        raw = base64.b64decode(value.get("b64", ""), validate=True)
        count = math.prod(shape)
        budget[0] -= count
        if budget[0] < 0 or len(raw) != count * np.dtype(dtype).itemsize:
            raise Unreadable("an array of the wrong size")
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    if isinstance(value, dict):
        return {k: decode(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, budget) for v in value]
    return value


# ---- the form of each report: anything else fails its check ----------------------------------
ARRAY, ANY = "array", "any"  # a decoded numpy array; any value (the student's own return value, judged below)


def listof(item, length=None):
    "A list of `item`s, of exactly `length` items when given."
    return ("list", item, length)


def oneof(*forms):
    return ("oneof", forms)


def form_problem(value, form, where="result") -> str | None:
    "What in `value` differs from `form` (a type, ARRAY, ANY, listof, oneof or {key: form}; '?key' is optional)."
    if form == ANY:
        return None
    if form == ARRAY:
        return None if isinstance(value, np.ndarray) else f"{where} should be an array"
    if isinstance(form, tuple) and form[0] == "oneof":
        problems = [form_problem(value, f, where) for f in form[1]]
        return None if None in problems else problems[0]
    if isinstance(form, tuple) and form[0] == "list":
        if not isinstance(value, list) or (form[2] is not None and len(value) != form[2]):
            return f"{where} should be a list" + (f" of {form[2]}" if form[2] is not None else "")
        return next((p for i, v in enumerate(value) if (p := form_problem(v, form[1], f"{where}[{i}]"))), None)
    if isinstance(form, dict):
        keys = {k.lstrip("?") for k in form}
        if not isinstance(value, dict) or set(value) - keys or any(k not in value for k in form if k[0] != "?"):
            return f"{where} should have the keys {sorted(keys)}"
        return next(
            (
                p
                for k, f in form.items()
                if k.lstrip("?") in value and (p := form_problem(value[k.lstrip("?")], f, f"{where}.{k.lstrip('?')}"))
            ),
            None,
        )
    if form is type(None):
        return None if value is None else f"{where} should be None"
    ok = isinstance(value, form) and (form is bool or not isinstance(value, bool))  # True is not an int here
    return None if ok else f"{where} should be of type {form.__name__}"


def _params(n=None):
    "One array per parameter (`n`, by default the harness's usual parameters)."
    return listof(ARRAY, len(harness.SHAPES) if n is None else n)


FORMS = {  # probe -> the form of its report, from its spec
    "trajectory": lambda s: listof(listof(_params(), s["steps"]), len(s["seeds"])),
    "corner": lambda s: {
        "run": listof(_params(len(harness.CORNERS[s["corner"]][0])), s["steps"]),
        "buffer_dtypes": listof(str),
    },
    "first-step": lambda s: {"after": _params()},
    "decay-only": lambda s: {"after": _params()},
    "contract": lambda s: {
        "grad_changed": listof(listof(bool, len(harness.SHAPES)), s["steps"]),
        "after": _params(),
        "no_state_for_unused": {"?momentum_buffers": bool, "?m_buffers": bool, "?v_buffers": bool},
        "step_count": ANY,
    },
    "state-bytes": lambda s: {"before": ANY, "after": ANY},
    "estimate": lambda s: {"result": dict},
    "raises": lambda s: {"raised": oneof(str, type(None)), "?message": str},
    "zero-grad": lambda s: {"cleared": listof(bool, len(harness.SHAPES))},
    "base-params": lambda s: {"is_list": bool, "length": int, "same": bool},
    "momentum-state": lambda s: {
        "has_momentum": listof(bool, 2),
        "without_momentum": str,
        "saved": oneof(listof(oneof(ARRAY, type(None))), type(None)),
        "out_is_copy": bool,
        "in_is_copy": bool,
        "wrong_count": oneof(str, type(None)),
    },
    "resume": lambda s: {"straight": _params(), "resumed": _params()},
    "schedule": lambda s: listof({"lr": oneof(float, int, ARRAY)}, s["epochs"]),
    "schedule-bookkeeping": lambda s: listof(
        {"lr": oneof(float, int, ARRAY), "last_lr": ANY, "last_epoch": ANY}, s["epochs"]
    ),
}


def non_finite(value) -> int:
    "How many NaNs and infinities `value` holds, in its arrays and numbers, however deep."
    if isinstance(value, np.ndarray):
        return int(np.count_nonzero(~np.isfinite(value))) if value.dtype.kind in "fc" else 0
    if isinstance(value, float):
        return 0 if math.isfinite(value) else 1
    if isinstance(value, dict):
        return sum(non_finite(v) for v in value.values())
    if isinstance(value, list):
        return sum(non_finite(v) for v in value)
    return 0


# ---- references ------------------------------------------------------------------------------
def reference(kind, init, grads, lr, momentum=0.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    "Independent float64 trajectory for 'sgd', 'adam', 'adamw' or 'adamw-after' (decay after the step)."
    b1, b2 = betas
    p = [x.astype(np.float64) for x in init]
    m, v, snaps = [0.0 * x for x in p], [0.0 * x for x in p], []
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            g = g.astype(np.float64)
            if kind == "adamw":
                p[i] = p[i] * (1 - lr * weight_decay)
            elif kind != "adamw-after":
                g = g + weight_decay * p[i]
            if kind == "sgd":
                m[i] = momentum * m[i] + g
                p[i] = p[i] - lr * m[i]
            else:
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                p[i] = p[i] - lr * (m[i] / (1 - b1**t)) / (np.sqrt(v[i] / (1 - b2**t)) + eps)
            if kind == "adamw-after":
                p[i] = p[i] * (1 - lr * weight_decay)
        snaps.append([x.copy() for x in p])
    return snaps


def worst_error(got, want, init):
    """Largest deviation from the reference, relative to the farthest the reference moved that parameter
    from its start over the run (a trajectory that comes back near its start at one step would make that
    step's distance a poor yardstick: a correct float32 step then looked 30% wrong on some inputs).

    A NaN or an infinity anywhere is an infinite miss: Python's `max(0.0, nan)` is 0.0, so every
    comparison here goes through `_worst`, which never lets a non-finite number through as small."""
    scale = [max(max(float(np.max(np.abs(step[i] - x0))) for step in want), 1e-30) for i, x0 in enumerate(init)]
    worst = 0.0
    for got_step, want_step in zip(got, want, strict=True):
        for g, w, moved in zip(got_step, want_step, scale, strict=True):
            worst = _worst(worst, np.abs(np.asarray(g, np.float64) - w) / moved)
    return worst


def _worst(so_far: float, errors) -> float:
    "The larger of `so_far` and every value of `errors`; infinity if any of them is not finite."
    errors = np.asarray(errors, np.float64)
    if errors.size and not np.all(np.isfinite(errors)):
        return math.inf
    return max(so_far, float(np.max(errors))) if errors.size else so_far


def _shapes_ok(arrays, shapes=harness.SHAPES, dtype=None):
    if len(arrays) != len(shapes):
        return f"reported {len(arrays)} parameters, not {len(shapes)}"
    for i, (a, s) in enumerate(zip(arrays, shapes)):
        if not isinstance(a, np.ndarray) or a.shape != tuple(s):
            return f"parameter {i} should keep its shape {tuple(s)}, but has shape {np.shape(a)}"
        if dtype is not None and a.dtype != np.dtype(dtype):
            return f"a {dtype} parameter should stay {dtype}, but became {a.dtype}"
    return None


# ---- verdicts: (passed, message, error / tolerance or None) ----------------------------------
def _run_problem(spec, run, shapes=harness.SHAPES, dtype=None):
    "What is wrong with one run's snapshots (their number, shapes, dtype), or None."
    if not isinstance(run, list) or len(run) != spec["steps"]:
        raise Unreadable("one snapshot per step")
    return next((p for p in (_shapes_ok(snap, shapes, dtype) for snap in run) if p), None)


def _miss(spec, run, init, grads) -> float:
    "How far a run misses the nearest reference its optimizer allows (AdamW: either decay order)."
    hyper = {k: tuple(v) if k == "betas" else v for k, v in spec["hyper"].items()}
    return min(worst_error(run, reference(k, init, grads, **hyper), init) for k in KINDS[spec["cls"]])


def _rule_verdict(spec, worst: float, tolerance: float):
    message = (
        f"{spec['check']}: after {spec['steps']} steps the weights miss by {worst:.1e} times the distance "
        f"they should have moved (allowed: {tolerance:.0e}). {HINTS.get(spec['check'], '')}"
    ).rstrip()
    return worst <= tolerance, message, worst / tolerance


def _trajectory(spec, value):
    if not isinstance(value, list) or len(value) != len(spec["seeds"]):
        raise Unreadable("one run per seed")
    worst = 0.0
    for seed, run in zip(spec["seeds"], value):
        problem = _run_problem(spec, run)
        if problem:
            return False, f"{spec['check']}: {problem}.", None
        worst = max(worst, _miss(spec, run, *harness.rule_inputs(seed, spec)))
    return _rule_verdict(spec, worst, TOLERANCE)


def _corner(spec, value):
    shapes, dtype = harness.CORNERS[spec["corner"]]
    problem = _run_problem(spec, value["run"], shapes, dtype)
    if problem:
        return False, f"{spec['check']}: {problem}.", None
    copies = _copies(spec)
    if len(value["buffer_dtypes"]) != copies * len(shapes):
        return (
            False,
            (
                f"{spec['check']}: expected {copies} state buffer(s) per parameter in the buffer lists "
                f"`state_names` names, found {len(value['buffer_dtypes'])} in all"
            ),
            None,
        )
    wrong = sorted({d for d in value["buffer_dtypes"] if d != dtype})
    if wrong:
        return (
            False,
            f"{spec['check']}: state buffers should have the parameter's dtype ({dtype}), not {wrong[0]}.",
            None,
        )
    worst = _miss(spec, value["run"], *harness.corner_inputs(spec["seed"], spec["corner"], spec["steps"]))
    return _rule_verdict(spec, worst, TOLERANCES.get(dtype, TOLERANCE))


def _first_step(spec, value):
    after, lr = value["after"], spec["hyper"]["lr"]
    problem = _shapes_ok(after)
    if problem:
        return False, f"{spec['check']}: {problem}.", None
    off = 0.0
    for a, b in zip(after, harness.init(spec["seed"]), strict=True):
        off = _worst(off, np.abs(np.abs(np.asarray(a, np.float64) - b) / lr - 1))
    return (
        off <= 1e-3,
        (
            f"{spec['check']}: the first Adam step should move each weight by about lr, but some move "
            f"{off:.1%} more or less; check the bias correction on step 1"
        ),
        off / 1e-3,
    )


def _decay_only(spec, value):
    after = value["after"]
    problem = _shapes_ok(after)
    if problem:
        return False, f"{spec['check']}: {problem}.", None
    factor = (1 - spec["lr"] * spec["weight_decay"]) ** 4
    err = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for a, x in zip(after, harness.init(spec["seed"]), strict=True):
            err = _worst(err, np.abs(np.asarray(a, np.float64) / x - factor))
    return (
        err <= 1e-5,
        (
            f"{spec['check']}: with zero gradients AdamW should shrink every weight by the same factor "
            f"each step; off by {err:.1e}. The decay must not go through the gradient or the moments"
        ),
        err / 1e-5,
    )


def _contract(spec, value):
    name, init, skip = spec["cls"], harness.init(spec["seed"]), spec["skip"]
    after = value["after"]
    problem = _shapes_ok(after)
    if problem:
        return False, f"{name}: {problem}.", None
    for step in value["grad_changed"]:
        for i, changed in enumerate(step):
            if changed:
                return False, f"{name}.step() changed the gradient of parameter {i}", None
    if not np.array_equal(after[skip], init[skip]):
        return False, f"{name} moved a parameter whose grad is None", None
    if not all(flag is True for flag in value["no_state_for_unused"].values()):
        return False, f"{name} created state for a parameter that never had a gradient", None
    if np.array_equal(after[spec["as_array"]], init[spec["as_array"]]):
        return False, f"{name} should accept a gradient given as a numpy array", None
    if not all(a.dtype == np.float32 for a in after):
        return False, f"{name} changed a float32 parameter's dtype", None
    if _integer(value["step_count"]) != spec["steps"]:
        return False, f"{name}.step_count should count step() calls ({spec['steps']}), not {value['step_count']}", None
    return True, f"{name} keeps the step contract", None


def _copies(spec) -> int:
    "How many state buffers per trained parameter the optimizer of `spec` keeps."
    return 2 if spec["cls"] != "SGD" else (1 if spec["hyper"].get("momentum") else 0)


def _integer(x):
    x = x.item() if isinstance(x, np.ndarray) and x.shape == () else x
    return x if isinstance(x, (int, np.integer)) and not isinstance(x, bool) else None


def _state_bytes(spec, value):
    name = spec["check"].replace("state_bytes of ", "")
    copies = _copies(spec)
    trained = sum(int(np.prod(s)) for i, s in enumerate(harness.SHAPES) if i != spec["skip"])  # no gradient, no state
    dtype = spec["dtype"]
    want = copies * trained * np.dtype(dtype).itemsize
    before, after = _integer(value["before"]), _integer(value["after"])
    if before != 0:
        return False, f"a new {name} should hold 0 bytes of state (buffers are created lazily)", None
    if after is None:
        return False, f"{name}.state_bytes() should return an integer number of bytes", None
    return (
        after == want,
        (
            f"{name}.state_bytes() is off by {abs(after - want)} bytes after one step "
            f"({copies} buffer(s) per trained parameter, each of the parameter's dtype, {dtype})"
        ),
        None,
    )


def _estimate(spec, value):
    (n, kind), kw = spec["args"], spec["kwargs"]
    est, one = value["result"], n * kw["bytes_per_value"]
    copies = {"sgd": 1 if kw["momentum"] > 0 else 0, "adam": 2, "adamw": 2}[kind.lower()]
    if set(est) != {"params", "grads", "optimizer_state", "total"}:
        return False, f"{spec['check']}: return exactly the four keys", None
    values = {k: _integer(v) for k, v in est.items()}
    if any(v is None for v in values.values()):
        return False, f"{spec['check']}: every entry should be an integer", None
    for key, want in [("params", one), ("grads", one), ("optimizer_state", copies * one)]:
        if values[key] != want:
            return (
                False,
                (
                    f"{key} for {kind} (momentum={kw['momentum']}, {kw['bytes_per_value']} bytes per value) "
                    f"is off by a factor of {values[key] / max(want, 1):.3g}"
                ),
                None,
            )
    if values["total"] != (2 + copies) * one:
        return False, f"{spec['check']}: total should be the sum of the three parts", None
    return True, spec["check"], None


def _raises(spec, value):
    subject = {
        "empty": "an empty parameter list",
        "frozen": "a parameter with requires_grad=False",
        "estimate": f"estimate_training_memory{tuple(spec.get('args', ()))}",
    }[spec["call"]]
    if value.get("raised") != "ValueError":
        return False, f"{subject} should raise ValueError (it raised {value.get('raised') or 'nothing'})", None
    if spec["call"] == "frozen" and "1" not in str(value.get("message", "")):
        return False, "the ValueError for requires_grad=False should name the parameter's index (1)", None
    return True, spec["check"], None


def _zero_grad(spec, value):
    cleared = value["cleared"]
    return (
        len(cleared) == len(harness.SHAPES) and all(flag is True for flag in cleared),
        "zero_grad should set every gradient to None, Tensor or array",
        None,
    )


def _base_params(spec, value):
    if value["is_list"] is not True or value["length"] != len(harness.SHAPES):
        return False, "params should become a list, even from a generator", None
    return value["same"] is True, "params should hold the very tensors you were given, not copies", None


def _momentum_state(spec, value):
    if value["has_momentum"] != [True, False]:
        return False, "has_momentum should say whether momentum > 0", None
    if value["without_momentum"] != "None":
        return False, "get_momentum_state should return None without momentum", None
    saved = value["saved"]
    if (
        saved is None
        or _shapes_ok(saved)
        or not all(
            np.array_equal(np.asarray(s, np.float64), np.asarray(g, np.float64))
            for s, g in zip(saved, harness.grads(spec["seed"], 1)[0])
        )
    ):
        return False, "after one step, get_momentum_state should hold one velocity per parameter (v = g)", None
    if value["out_is_copy"] is not True:
        return False, "get_momentum_state should return copies", None
    if value["in_is_copy"] is not True:
        return False, "set_momentum_state should store copies", None
    return (
        value["wrong_count"] == "ValueError",
        "set_momentum_state with the wrong number of buffers should raise ValueError",
        None,
    )


def _resume(spec, value):
    a, b = value["straight"], value["resumed"]
    if _shapes_ok(a) or _shapes_ok(b):
        return False, f"{spec['cls']}: resuming should keep every parameter's shape", None
    same = all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b))
    return (
        same,
        (
            f"{spec['cls']}: resuming from state_dict() should continue bit for bit; check your state "
            "lives in its buffers"
        ),
        None,
    )


SCHEDULE_HINTS = {
    "StepLR(step_size=3, gamma=0.5) over 10 epochs": "Check on which epoch each decay falls, counting epochs from 0.",
    "StepLR(step_size=2) with the default gamma over 7 epochs": "Check the default gamma and that the rate decays "
    "only every step_size epochs.",
    "StepLR resumed with last_epoch=5": "A resumed schedule continues at epoch last_epoch + 1, from "
    "optimizer.initial_lr.",
}


def _first_epoch(spec) -> int:
    "The epoch the probe's first record belongs to: 0, or last_epoch + 1 for a resumed schedule."
    return 0 if spec.get("resume_at") is None else spec["resume_at"] + 1


def _schedule_rates(spec) -> list:
    "The reference learning rate of each epoch the probe recorded (torch's StepLR, default gamma 0.1)."
    gamma = spec.get("gamma", 0.1)
    return [spec["base_lr"] * gamma ** ((_first_epoch(spec) + k) // spec["step_size"]) for k in range(spec["epochs"])]


def _schedule(spec, value):
    got = np.array([float(v["lr"]) for v in value])
    want = np.array(_schedule_rates(spec))
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.abs(got - want) / want
    bad = np.flatnonzero(~(off <= 1e-9))
    if not bad.size:
        return True, spec["check"], float(np.max(off)) / 1e-9
    worst = float(np.max(np.where(np.isfinite(off), off, np.inf)))
    first = _first_epoch(spec) + int(bad[0])
    message = f"{spec['check']}: the learning rate is wrong from epoch {first} on (off by up to {worst:.0%})."
    return False, f"{message} {SCHEDULE_HINTS.get(spec['check'], '')}".rstrip(), worst / 1e-9


def _schedule_bookkeeping(spec, value):
    for epoch, v in enumerate(value):
        if _integer(v["last_epoch"]) != epoch:
            message = (f"last_epoch should count the epochs from 0 (the constructor's step() starts epoch 0), but "
                       f"after construction and {epoch} step() calls it is {v['last_epoch']}")  # fmt: skip
            return False, message, None
        last = v["last_lr"]
        if not isinstance(last, list) or len(last) != 1 or float(last[0]) != float(v["lr"]):
            return False, "get_last_lr() should return [optimizer.lr], the rate the last step() set, in a list", None
    return True, spec["check"], None


VERDICTS = {
    "trajectory": _trajectory,
    "first-step": _first_step,
    "decay-only": _decay_only,
    "contract": _contract,
    "state-bytes": _state_bytes,
    "estimate": _estimate,
    "raises": _raises,
    "zero-grad": _zero_grad,
    "base-params": _base_params,
    "momentum-state": _momentum_state,
    "resume": _resume,
    "corner": _corner,
    "schedule": _schedule,
    "schedule-bookkeeping": _schedule_bookkeeping,
}


def judge_check(spec, reports: list) -> dict:
    "One check's verdict from the reports the kernel published for it (exactly one is expected)."
    result = {"check": spec["check"], "passed": False, "ratio": None}
    if not reports:
        return {**result, "message": f"{spec['check']}: no result reached the grader (did the cell stop early?)"}
    if len(reports) > 1:
        return {**result, "message": f"{spec['check']}: reported more than once"}
    report = reports[0]
    if "error" in report:
        return {**result, "message": f"{spec['check']}: raised {str(report['error'])[:300]}"}
    try:
        value = decode(report.get("value"))
        problem = form_problem(value, FORMS[spec["probe"]](spec))
        if problem:
            raise Unreadable(problem)
        bad = non_finite(value)
        if bad:  # every input and every reference is finite: a NaN or an infinity is never right here
            return {
                **result,
                "message": f"{spec['check']}: {bad} value(s) became NaN or infinite; a correct "
                "optimizer keeps every number finite on these inputs",
            }
        passed, message, ratio = VERDICTS[spec["probe"]](spec, value)
    except Exception as exc:  # a malformed report fails its own check and nothing else
        return {**result, "message": f"{spec['check']}: the grader could not read the result ({type(exc).__name__})"}
    return {
        "check": spec["check"],
        "passed": bool(passed),
        "ratio": ratio,
        "message": spec["check"] if passed else message,
    }


def judge_cell(cell_id: str, observations: list, salt: str | None = None) -> list:
    "Verdicts for every check of graded cell `cell_id`, from the observations it published, on inputs drawn for `salt`."
    return [
        judge_check(spec, [o for o in observations if o.get("check") == spec["check"]])
        for spec in (harness.drawn(s, salt) for s in harness.PROBES.get(cell_id, []))
    ]
