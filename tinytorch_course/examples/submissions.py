"""Example submissions, built from the current source notebook by named edits (never stale copies).

- `BUGS`: plausible student mistakes; each must lose points. `CORNER_SLIPS` among them are confined to
  one corner (a 0-d, non-contiguous or other-dtype parameter) and must cost at most its 10 points.
- `CORRECT`: other correct ways to write the module; each must earn every autograded point.
- `HOSTILE`: submissions that loop, crash, delete or damage cells, or are not notebooks at all;
  each must still end with a score and an explanation.

This module holds solutions: it is test data for the grader and never goes into the student repository.
"""

from .edits import append_code, delete, replace, rewrite, solution_body, to_markdown

_LAZY_MOMENTS = """\
        if self.m_buffers[i] is None:
            self.m_buffers[i] = np.zeros_like(param.data)
            self.v_buffers[i] = np.zeros_like(param.data)
"""
_PLAIN_SGD = """\
        self.step_count += 1
        for i, param, grad in self.gradients():
            # the step direction g + wd*p, in the one temporary array this update allocates
            d = np.multiply(param.data, self.weight_decay, out=np.empty_like(param.data))
            d += grad
            if self.momentum:
                v = self.momentum_buffers[i]
                if v is None:
                    v = self.momentum_buffers[i] = d.copy()
                else:
                    v *= self.momentum
                    v += d
                np.multiply(v, self.lr, out=d)
            else:
                d *= self.lr
            param.data -= d
"""
_PLAIN_ADAM = (
    _LAZY_MOMENTS
    + """\
        m, v, t = self.m_buffers[i], self.v_buffers[i], self.step_count
        m *= self.beta1
        m += (1 - self.beta1) * grad
        scratch = np.square(grad, out=np.empty_like(param.data))  # this update's one temporary array
        scratch *= 1 - self.beta2
        v *= self.beta2
        v += scratch
        np.divide(v, 1 - self.beta2 ** t, out=scratch)  # v_hat
        np.sqrt(scratch, out=scratch)
        scratch += self.eps
        np.divide(m, scratch, out=scratch)  # m / (sqrt(v_hat) + eps)
        scratch *= self.lr / (1 - self.beta1 ** t)  # the bias correction of m folded into the step size
        param.data -= scratch
"""
)


def plain(cell_id: str, *edits):
    "Edits to the whole-array, in-place version the prompt asks for (the reference works in blocks)."
    body = {"sgd-class": ("def step", _PLAIN_SGD), "adam-class": ("def update", _PLAIN_ADAM)}[cell_id]
    return [solution_body(cell_id, *body)] + [replace(cell_id, old, new) for old, new in edits]


# ---- bugs ------------------------------------------------------------------------------------
_SGD_DIRECTION = (
    "            d = np.multiply(param.data, self.weight_decay, out=np.empty_like(param.data))\n            d += grad\n"
)
_ADAM_STEP = "        self.step_count += 1\n        for i, param, grad in self.gradients():\n            self.update("

BUGS = {
    "sgd-ascent": plain("sgd-class", ("            param.data -= d", "            param.data += d")),
    "sgd-momentum-dampening": plain(
        "sgd-class", ("                    v += d", "                    v += (1 - self.momentum) * d")
    ),
    "sgd-ignores-weight-decay": plain(
        "sgd-class", (_SGD_DIRECTION, "            d = np.array(grad, dtype=param.dtype)\n")
    ),
    "sgd-weight-decay-sign": plain("sgd-class", ("            d += grad\n", "            d = grad - d\n")),
    "sgd-mutates-gradient": plain(
        "sgd-class",
        (_SGD_DIRECTION, "            grad += self.weight_decay * param.data\n            d = grad.copy()\n"),
    ),
    "sgd-velocity-shared-by-shape": plain(
        "sgd-class",
        (
            "                v = self.momentum_buffers[i]\n",
            "                v = next((b for b in self.momentum_buffers\n"
            "                          if b is not None and b.shape == d.shape), None)\n",
        ),
    ),
    "sgd-momentum-unused": plain(
        "sgd-class", ("                np.multiply(v, self.lr, out=d)", "                d *= self.lr")
    ),
    "adam-eps-inside-sqrt": plain(
        "adam-class",
        (
            "        np.sqrt(scratch, out=scratch)\n        scratch += self.eps\n",
            "        scratch += self.eps\n        np.sqrt(scratch, out=scratch)\n",
        ),
    ),
    "adam-no-bias-correction": plain(
        "adam-class",
        ("        np.divide(v, 1 - self.beta2 ** t, out=scratch)", "        scratch[...] = v"),
        ("        scratch *= self.lr / (1 - self.beta1 ** t)", "        scratch *= self.lr"),
    ),
    "adam-bias-correction-off-by-one": plain(
        "adam-class", ("self.v_buffers[i], self.step_count\n", "self.v_buffers[i], self.step_count + 1\n")
    ),
    "adam-step-count-per-parameter": [
        replace(
            "adam-class",
            _ADAM_STEP,
            "        for i, param, grad in self.gradients():\n"
            "            self.step_count += 1\n            self.update(",
        )
    ],
    "adam-abs-instead-of-square": plain(
        "adam-class", ("scratch = np.square(grad, out=", "scratch = np.abs(grad, out=")
    ),
    "adam-v-uncorrected": plain(
        "adam-class", ("        np.divide(v, 1 - self.beta2 ** t, out=scratch)", "        scratch[...] = v")
    ),
    "adam-betas-swapped": plain(
        "adam-class",
        (
            "        m *= self.beta1\n        m += (1 - self.beta1) * grad",
            "        m *= self.beta2\n        m += (1 - self.beta2) * grad",
        ),
        (
            "        scratch *= 1 - self.beta2\n        v *= self.beta2",
            "        scratch *= 1 - self.beta1\n        v *= self.beta1",
        ),
    ),
    "adam-blocks-rebind-moments": [
        replace(
            "adam-class",
            "            m *= self.beta1\n            m += scratch\n",
            "            m = self.beta1 * m + scratch  # rebinds the name: state unchanged\n",
        )
    ],
    "adam-ignores-l2": [
        replace(
            "adam-class", "return grad + self.weight_decay * param.data if self.weight_decay else grad", "return grad"
        )
    ],
    "adam-one-buffer-for-m-and-v": [
        replace(
            "adam-class",
            "            self.v_buffers[i] = np.zeros_like(param.data)",
            "            self.v_buffers[i] = self.m_buffers[i]",
        )
    ],
    "adam-eager-state": [
        replace(
            "adam-class",
            "        self.m_buffers = [None] * len(self.params)\n        self.v_buffers = [None] * len(self.params)",
            "        self.m_buffers = [np.zeros_like(p.data) for p in self.params]\n"
            "        self.v_buffers = [np.zeros_like(p.data) for p in self.params]",
        )
    ],
    "adam-float64-parameters": plain(
        "adam-class", ("        param.data -= scratch", "        param.data = param.data.astype(np.float64) - scratch")
    ),
    "adamw-l2-coupled": [
        replace(
            "adamw-class",
            "            param.data *= 1 - self.lr * self.weight_decay\n        return grad",
            "            return grad + self.weight_decay * param.data\n        return grad",
        )
    ],
    "adamw-decay-without-lr": [
        replace("adamw-class", "param.data *= 1 - self.lr * self.weight_decay", "param.data *= 1 - self.weight_decay")
    ],
    "adamw-decay-and-l2": [
        replace(
            "adamw-class",
            "            param.data *= 1 - self.lr * self.weight_decay\n        return grad",
            "            param.data *= 1 - self.lr * self.weight_decay\n"
            "            return grad + self.weight_decay * param.data\n        return grad",
        )
    ],
    "state-bytes-counts-parameters": [
        replace(
            "optimizer-class",
            "return int(sum(b.nbytes for name in self.state_names for b in getattr(self, name) if b is not None))",
            "return int(sum(p.data.nbytes for p in self.params))",
        )
    ],
    "state-bytes-first-buffer-only": [
        replace("optimizer-class", "for name in self.state_names for b", "for name in self.state_names[:1] for b")
    ],
    "estimate-adam-one-buffer": [replace("memory-estimate", '"adam": 2, "adamw": 2', '"adam": 1, "adamw": 1')],
    "estimate-sgd-ignores-momentum": [replace("memory-estimate", '"sgd": 1 if momentum > 0 else 0', '"sgd": 0')],
    "estimate-total-without-grads": [
        replace("memory-estimate", '"total": 2 * one_copy + state', '"total": one_copy + state')
    ],
    "zero-grad-fills-zeros": [
        replace("optimizer-class", "            p.grad = None", "            p.grad = Tensor(np.zeros_like(p.data))")
    ],
    "momentum-state-not-copied": [
        replace("sgd-class", "return copy_buffers(self.momentum_buffers) if", "return self.momentum_buffers if")
    ],
    "params-kept-as-generator": [
        replace(
            "optimizer-class",
            "        self.params = list(params)\n        if not self.params:",
            "        self.params = params\n        if not self.params:",
        )
    ],
    "state-bytes-returns-zero": [
        replace(
            "optimizer-class",
            "return int(sum(b.nbytes for name in self.state_names for b in getattr(self, name) if b is not None))",
            "return 0",
        )
    ],
    "set-momentum-state-missing": [
        replace(
            "sgd-class",
            "        if state is None:\n            self.momentum_buffers = [None] * len(self.params)\n"
            "        else:\n"
            '            self.momentum_buffers = checked_buffers(state, self.params, "momentum state")\n',
            "        pass\n",
        )
    ],
    "steplr-off-by-one-epoch": [
        replace(
            "steplr-class",
            "self.gamma ** (self.last_epoch // self.step_size)",
            "self.gamma ** ((self.last_epoch + 1) // self.step_size)",
        )
    ],
    "steplr-decays-every-step": [
        replace("steplr-class", "self.gamma ** (self.last_epoch // self.step_size)", "self.gamma ** self.last_epoch")
    ],
    "steplr-loses-base-lr": [
        replace(
            "steplr-class",
            "self.optimizer.lr = self.base_lr * self.gamma ** (self.last_epoch // self.step_size)",
            "self.optimizer.lr = self.optimizer.lr * self.gamma ** (self.last_epoch // self.step_size)",
        )
    ],
    "steplr-resume-from-current-lr": [
        replace(
            "steplr-class",
            "        if last_epoch == -1:\n            optimizer.initial_lr = optimizer.lr\n"
            "        self.base_lr, self.last_epoch = optimizer.initial_lr, last_epoch",
            "        optimizer.initial_lr = optimizer.lr\n"
            "        self.base_lr, self.last_epoch = optimizer.lr, last_epoch",
        )
    ],
    # slips confined to one corner: each must cost something, and at most the corner's points
    "sgd-slice-assign-0d": plain(
        "sgd-class", ("            param.data -= d", "            param.data[:] = param.data - d")
    ),
    "sgd-reshape-loses-views": plain(
        "sgd-class", ("            param.data -= d", "            param.data.reshape(-1)[...] -= d.reshape(-1)")
    ),
    "adam-moments-always-float32": [
        replace(
            "adam-class",
            "            self.m_buffers[i] = np.zeros_like(param.data)\n"
            "            self.v_buffers[i] = np.zeros_like(param.data)",
            "            self.m_buffers[i] = np.zeros(param.data.shape, dtype=np.float32)\n"
            "            self.v_buffers[i] = np.zeros(param.data.shape, dtype=np.float32)",
        )
    ],
    "state-bytes-four-bytes-per-value": [
        replace("optimizer-class", "sum(b.nbytes for name", "sum(4 * b.size for name")
    ],
}
CORNER_SLIPS = ["sgd-slice-assign-0d", "sgd-reshape-loses-views", "adam-moments-always-float32"]

# ---- correct styles --------------------------------------------------------------------------
_SEED_STYLE_SGD = """\
        self.step_count += 1
        for i, param, grad in self.gradients():
            if self.weight_decay != 0:
                grad = grad + self.weight_decay * param.data
            if self.momentum != 0:
                if self.momentum_buffers[i] is None:
                    self.momentum_buffers[i] = np.zeros_like(param.data)
                self.momentum_buffers[i] = self.momentum * self.momentum_buffers[i] + grad
                grad = self.momentum_buffers[i]
            param.data = param.data - self.lr * grad
"""
_SEED_STYLE_ADAM = (
    _LAZY_MOMENTS
    + """\
        self.m_buffers[i] = self.beta1 * self.m_buffers[i] + (1 - self.beta1) * grad
        self.v_buffers[i] = self.beta2 * self.v_buffers[i] + (1 - self.beta2) * (grad ** 2)
        bias_correction1 = 1 - self.beta1 ** self.step_count
        bias_correction2 = 1 - self.beta2 ** self.step_count
        m_hat = self.m_buffers[i] / bias_correction1
        v_hat = self.v_buffers[i] / bias_correction2
        param.data = param.data - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
"""
)
_FLOAT64_ADAM = (
    _LAZY_MOMENTS
    + """\
        g = grad.astype(np.float64)
        m = self.beta1 * self.m_buffers[i].astype(np.float64) + (1 - self.beta1) * g
        v = self.beta2 * self.v_buffers[i].astype(np.float64) + (1 - self.beta2) * g * g
        self.m_buffers[i][...] = m
        self.v_buffers[i][...] = v
        t = self.step_count
        step = self.lr * (m / (1 - self.beta1 ** t)) / (np.sqrt(v / (1 - self.beta2 ** t)) + self.eps)
        param.data[...] = param.data.astype(np.float64) - step
"""
)
_FLOAT64_SGD = """\
        self.step_count += 1
        for i, param, grad in self.gradients():
            g = grad.astype(np.float64) + self.weight_decay * param.data.astype(np.float64)
            if self.momentum:
                if self.momentum_buffers[i] is None:
                    self.momentum_buffers[i] = np.zeros_like(param.data)
                g = self.momentum * self.momentum_buffers[i].astype(np.float64) + g
                self.momentum_buffers[i][...] = g
            param.data[...] = param.data.astype(np.float64) - self.lr * g
"""
_TORCH_DENOMINATOR = (
    _LAZY_MOMENTS
    + """\
        m, v, t = self.m_buffers[i], self.v_buffers[i], self.step_count
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad
        denom = np.sqrt(v) / np.sqrt(1 - self.beta2 ** t) + self.eps
        step_size = self.lr / (1 - self.beta1 ** t)
        param.data -= step_size * m / denom
"""
)
_LERP_ADAM = """\
        if self.m_buffers[i] is None:
            self.m_buffers[i], self.v_buffers[i] = np.zeros_like(param.data), np.zeros_like(param.data)
        m, v = self.m_buffers[i], self.v_buffers[i]
        m += (1 - self.beta1) * (grad - m)
        v += (1 - self.beta2) * (grad * grad - v)
        m_hat = m / (1 - self.beta1 ** self.step_count)
        v_hat = v / (1 - self.beta2 ** self.step_count)
        param.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
"""
_OWN_LOOP_SGD = """\
        self.step_count += 1
        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            g = param.grad.data if isinstance(param.grad, Tensor) else np.asarray(param.grad)
            g = g + self.weight_decay * param.data
            if self.momentum > 0:
                if self.momentum_buffers[i] is None:
                    self.momentum_buffers[i] = np.zeros_like(param.data)
                buf = self.momentum_buffers[i]
                buf *= self.momentum
                buf += g
                g = buf
            param.data -= self.lr * g
"""
_HELPERS_CELL = """\
#| export
def _adam_moments(m, v, grad, beta1, beta2):
    "Update the two running averages in place."
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * np.square(grad)


def _adam_direction(m, v, t, beta1, beta2, eps):
    "The bias-corrected Adam direction m_hat / (sqrt(v_hat) + eps)."
    return (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)


def _sgd_direction(grad, param, weight_decay):
    return grad + weight_decay * param if weight_decay else grad
"""
_HELPER_ADAM = (
    _LAZY_MOMENTS
    + """\
        _adam_moments(self.m_buffers[i], self.v_buffers[i], grad, self.beta1, self.beta2)
        direction = _adam_direction(self.m_buffers[i], self.v_buffers[i], self.step_count,
                                    self.beta1, self.beta2, self.eps)
        param.data -= self.lr * direction
"""
)
_HELPER_SGD = """\
        self.step_count += 1
        for i, param, grad in self.gradients():
            d = _sgd_direction(grad, param.data, self.weight_decay)
            if self.momentum:
                if self.momentum_buffers[i] is None:
                    self.momentum_buffers[i] = np.array(d, dtype=param.dtype)
                else:
                    self.momentum_buffers[i] = self.momentum * self.momentum_buffers[i] + d
                d = self.momentum_buffers[i]
            param.data -= self.lr * d
"""
_ADAMW_DECAY_AFTER = """\
#| export
class AdamW(Adam):
    "Adam with decoupled weight decay, applied after the Adam step (the seed's listing 7.4)."
    def __init__(self, params, lr: float = 0.001, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def regularize(self, param, grad):
        return grad

    def step(self) -> None:
        self.step_count += 1
        for i, param, grad in self.gradients():
            self.update(i, param, grad)
            param.data = param.data * (1 - self.lr * self.weight_decay)
"""

_CHAINABLE_STEPLR_STEP = """\
        self.last_epoch += 1  # torch's own get_lr(): multiply the current rate on each step_size-th epoch
        if self.last_epoch > 0 and self.last_epoch % self.step_size == 0:
            self.optimizer.lr = self.optimizer.lr * self.gamma
        self._last_lr = [self.optimizer.lr]
"""
_STORED_LAST_LR = """\
        return list(self._last_lr)
"""

_LOGGING_STEP = """\
        import logging, sys, warnings
        self.step_count += 1
        logging.warning("Adam step %d", self.step_count)  # a log line on stderr
        print(f"debug: step {self.step_count}", file=sys.stderr)
        warnings.warn("a warning from the student's code")
        np.float32(1.0) / np.float32(0.0)  # numpy's RuntimeWarning
        for i, param, grad in self.gradients():
            self.update(i, param, self.regularize(param, grad))
"""


CORRECT = {
    "reference": [],
    "plain-whole-arrays": plain("sgd-class") + plain("adam-class"),
    "seed-style-out-of-place": [
        solution_body("sgd-class", "def step", _SEED_STYLE_SGD),
        solution_body("adam-class", "def update", _SEED_STYLE_ADAM),
    ],
    "float64-inside": [
        solution_body("sgd-class", "def step", _FLOAT64_SGD),
        solution_body("adam-class", "def update", _FLOAT64_ADAM),
    ],
    "adamw-decay-after-step": [rewrite("adamw-class", _ADAMW_DECAY_AFTER)],
    "torch-style-denominator": [solution_body("adam-class", "def update", _TORCH_DENOMINATOR)],
    "helper-functions": [
        append_code("helpers", _HELPERS_CELL),
        solution_body("sgd-class", "def step", _HELPER_SGD),
        solution_body("adam-class", "def update", _HELPER_ADAM),
    ],
    "own-loop-and-lerp-moments": [
        solution_body("sgd-class", "def step", _OWN_LOOP_SGD),
        solution_body("adam-class", "def update", _LERP_ADAM),
    ],
    "logging-and-warnings": [solution_body("adam-class", "def step", _LOGGING_STEP)],
    "steplr-chainable-like-torch": [
        solution_body("steplr-class", "def step", _CHAINABLE_STEPLR_STEP),
        solution_body("steplr-class", "def get_last_lr", _STORED_LAST_LR),
    ],
}

# ---- hostile submissions ---------------------------------------------------------------------
_PATCH_COMPARISONS = """\
import numpy as np
np.allclose = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
"""

HOSTILE = {
    "infinite-loop": [append_code("optimizer-class", "while True:\n    pass\n")],
    "kernel-exit": [append_code("optimizer-class", "import os\nos._exit(1)\n")],
    "segfault": [append_code("sgd-class", "import ctypes\nctypes.string_at(0)\n")],
    "kernel-exit-everywhere": [
        append_code(cell, "import os\nos._exit(1)\n")
        for cell in ("optimizer-class", "sgd-class", "adam-class", "adamw-class", "memory-estimate")
    ],
    "huge-allocation": [append_code("adam-class", "import numpy as np\nhuge = np.ones((60_000, 60_000))\n")],
    "deleted-graded-cells": [delete("test-sgd-plain"), delete("test-adam-update"), delete("grading-helpers")],
    "edited-locked-cells": BUGS["adam-no-bias-correction"]
    + [
        rewrite("test-adam-bias-correction", '"""I promise it works."""\n'),
        rewrite("test-adam-update", "pass\n"),
        replace("imports", "import numpy as np", "import numpy as np  # mine"),
    ],
    "graded-cell-as-markdown": [to_markdown("test-sgd-momentum"), to_markdown("test-checkpoint")],
    "patched-comparisons": BUGS["adam-no-bias-correction"] + [append_code("imports", _PATCH_COMPARISONS)],
}
UNREADABLE = {"corrupt-json": b'{"cells": [{"cell_type": "code", "source": "print(1)"', "missing-notebook": None}
