"""L-BFGS: a quasi-Newton method that steps along an approximate Newton direction,
optionally with a strong-Wolfe line search (PyTorch's algorithm, after minFunc).

Each ``step(closure)`` runs up to ``max_iter`` iterations, each calling the closure (the
loss and its gradient) at least once. The pieces are plain functions over flat NumPy
vectors: :func:`lbfgs_direction` (the two-loop recursion), :func:`cubic_interpolate`
and :func:`strong_wolfe` (the line search).
"""
from __future__ import annotations

import numbers

import numpy as np

from backprop.autograd.grad_mode import enable_grad, no_grad
from backprop.errors import ShapeError
from backprop.optim.optimizer import Optimizer, _check_nonnegative
from backprop.tensor import Tensor, _make

__all__ = ["LBFGS", "lbfgs_direction", "cubic_interpolate", "strong_wolfe"]


def lbfgs_direction(grad: np.ndarray, old_dirs: list, old_stps: list, ro: list, H_diag,
                    al: list) -> np.ndarray:
    """The L-BFGS search direction ``d = -H g`` by the two-loop recursion (a new array)::

        q = -g
        for i = k-1 .. 0:   a_i = ro_i * s_i.q;   q = q - a_i y_i
        r = H_diag * q                          # the initial inverse Hessian, scaled
        for i = 0 .. k-1:   b_i = ro_i * y_i.r;   r = r + (a_i - b_i) s_i
        d = r

    Args:
        grad: the flat gradient g.
        old_dirs, old_stps: the last k gradient differences y_i and steps s_i.
        ro: 1 / (y_i . s_i) for each pair.
        H_diag: the scale of the initial inverse Hessian, (y.s) / (y.y) of the last pair.
        al: scratch list (length >= k) that receives the a_i.

    Example::

        d = lbfgs_direction(np.array([2.0, -4.0]), [], [], [], 1, [])   # d == [-2, 4]
    """
    q = np.negative(grad)
    k = len(old_dirs)
    for i in range(k - 1, -1, -1):
        al[i] = np.dot(old_stps[i], q) * ro[i]
        q += np.multiply(old_dirs[i], -al[i])
    r = np.multiply(q, H_diag)
    for i in range(k):
        be_i = np.dot(old_dirs[i], r) * ro[i]
        r += np.multiply(old_stps[i], al[i] - be_i)
    return r


def cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2,
    clipped to ``bounds`` (default: between x1 and x2); the bounds' midpoint when the
    cubic has no minimum.

    Example::

        cubic_interpolate(0.0, 1.0, -2.0, 2.0, 1.0, 2.0)   # 1.0: the parabola (x-1)^2
    """
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def strong_wolfe(obj_func, x, t, d, f, g, gtd, c1: float = 1e-4, c2: float = 0.9,
                 tolerance_change: float = 1e-9, max_ls: int = 25):
    """Find a step ``t`` along ``d`` that meets the strong Wolfe conditions::

        f(x + t d) <= f(x) + c1 t g.d        (enough decrease)
        |g(x + t d).d| <= -c2 g.d            (the slope has flattened enough)

    First brackets an acceptable step (growing t by cubic extrapolation, at most 10x a
    time), then shrinks the bracket by cubic interpolation ("zoom"), keeping each trial
    at least 10% of the bracket away from its ends. Stops after ``max_ls`` evaluations
    or when the bracket is shorter than ``tolerance_change`` along ``d``.

    Args:
        obj_func: ``obj_func(x, t, d) -> (loss, flat_grad)`` at the point x + t d.
        x: the starting point (whatever ``obj_func`` takes as x).
        t: the first trial step.
        d: the search direction (a flat array).
        f, g, gtd: the loss, flat gradient and slope g.d at x.

    Returns ``(loss, flat_grad, t, evaluations)`` at the chosen step.

    Example::

        def obj(x, t, d):
            y = x + t * d
            return float(y @ y), 2 * y
        x = np.array([1.0, 1.0]); g = 2 * x
        strong_wolfe(obj, x, 1.0, -g, 2.0, g, float(-g @ g))   # t == 0.5, the minimum
    """
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = np.dot(g_new, d)

    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    bracket_gtd: list = []  # (set with a two-point bracket: the only one the zoom phase sees)
    # Bracketing phase: grow t until [t_prev, t] contains an acceptable step.
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        # Extrapolate, at least 1% beyond t and at most 10 t.
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                              bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = np.dot(g_new, d)
        ls_iter += 1

    if ls_iter == max_ls:  # out of evaluations: the bracket is [0, t]
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # Zoom phase: shrink the bracket until a point satisfies the conditions.
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                              bracket[1], bracket_f[1], bracket_gtd[1])
        # A trial too near an end of the bracket makes little progress: if the last one
        # did too, or t is at/outside an end, move it 10% of the bracket inwards.
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = np.dot(g_new, d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Not enough decrease: t becomes the high end.
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.copy(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # The minimum lies on the low end's other side: the old low end is high.
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.copy(), gtd_new

    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


class LBFGS(Optimizer):
    """L-BFGS: quasi-Newton steps from the last ``history_size`` gradient changes.

    Meant for full-batch problems: ``step(closure)`` evaluates the closure several times
    (up to ``max_eval``), so the closure must zero the gradients, compute the loss, call
    ``backward()`` and return the loss.

    Args:
        params: the parameters (one group only: L-BFGS has no per-group options).
        lr: learning rate: the step along the direction (default 1).
        max_iter: iterations per ``step`` call (default 20).
        max_eval: closure evaluations per ``step`` call (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when the largest gradient entry is at most this (default 1e-7).
        tolerance_change: stop when the loss or the weights change by less than this
            (default 1e-9).
        history_size: how many (step, gradient change) pairs to keep (default 100).
        line_search_fn: None (fixed steps of ``lr``) or ``"strong_wolfe"``.

    State (of the first parameter, as in PyTorch): ``"func_evals"`` and ``"n_iter"``
    (totals over all steps), the direction ``"d"``, step ``"t"``, the history
    ``"old_dirs"``, ``"old_stps"``, ``"ro"``, ``"H_diag"``, and ``"prev_flat_grad"``,
    ``"prev_loss"`` (and the scratch list ``"al"``). Vectors are flat tensors holding
    every parameter back to back.

    Example::

        opt = backprop.optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss

        for _ in range(10):
            opt.step(closure)
    """

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None):
        if max_eval is None and isinstance(max_iter, numbers.Integral):
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        _check_nonnegative(options, "lr", "learning rate")
        for key in ("max_iter", "max_eval", "history_size"):
            value = options[key]
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LBFGS: {key} must be a positive integer, got {value!r}")
        _check_nonnegative(options, "tolerance_grad", "tolerance_grad value")
        _check_nonnegative(options, "tolerance_change", "tolerance_change value")
        if options["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got "
                             f"{options['line_search_fn']!r}")

    def add_param_group(self, param_group: dict) -> None:
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    @property
    def _params(self) -> list:
        return self.param_groups[0]["params"]

    # -- flat views of all parameters ---------------------------------------------------
    def _gather_flat_grad(self) -> np.ndarray:
        """Every parameter's gradient, flattened and joined (zeros where grad is None)."""
        return np.concatenate([np.zeros(p._data.size, p._data.dtype) if p.grad is None
                               else p.grad._data.reshape(-1) for p in self._params])

    def _add_grad(self, step_size, update: np.ndarray) -> None:
        """p <- p + step_size * (p's slice of the flat ``update``), for every parameter."""
        offset = 0
        for p in self._params:
            n = p._data.size
            p._data += np.multiply(update[offset:offset + n].reshape(p._data.shape), step_size)
            p._bump_version()
            offset += n

    def _clone_param(self) -> list:
        return [p._data.copy() for p in self._params]

    def _set_param(self, params_data: list) -> None:
        for p, data in zip(self._params, params_data, strict=True):
            p._data[...] = data
            p._bump_version()

    def _directional_evaluate(self, closure, x: list, t, d: np.ndarray):
        """(loss, flat gradient) at x + t d; the parameters are put back to x after."""
        self._add_grad(t, d)
        loss = float(self._call(closure))
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    @staticmethod
    def _call(closure):
        with enable_grad():
            return closure()

    # -- the step -----------------------------------------------------------------------
    def step(self, closure=None):
        """Run up to ``max_iter`` L-BFGS iterations; return the loss the closure gave first.

        Args:
            closure: a function that zeroes the gradients, computes the loss, calls
                ``backward()`` and returns the loss (required).
        """
        if closure is None or not callable(closure):
            raise TypeError("LBFGS.step needs a closure that zeroes the gradients, computes "
                            "the loss, calls backward() and returns the loss: "
                            "opt.step(closure)")
        for hook in tuple(self._pre_hooks.values()):
            hook(self, (), {})
        with no_grad():
            orig_loss = self._iterate(closure)
        self._step_count += 1
        for hook in tuple(self._post_hooks.values()):
            hook(self, (), {})
        return orig_loss

    def _iterate(self, closure):
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = self._call(closure)
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1

        flat_grad = self._gather_flat_grad()
        if np.abs(flat_grad).max() <= tolerance_grad:  # already optimal
            return orig_loss

        # The state is kept as tensors (for state_dict); work on their arrays.
        d, t = _array(state.get("d")), state.get("t")
        old_dirs = [_array(v) for v in state.get("old_dirs", [])]
        old_stps = [_array(v) for v in state.get("old_stps", [])]
        ro, H_diag = list(state.get("ro", [])), state.get("H_diag")
        prev_flat_grad, prev_loss = _array(state.get("prev_flat_grad")), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # -- the direction
            if state["n_iter"] == 1:
                d = np.negative(flat_grad)
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = np.multiply(d, t)
                ys = np.dot(y, s)
                if ys > 1e-10:  # keep only pairs with positive curvature
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / np.dot(y, y)
                if "al" not in state:
                    state["al"] = [None] * history_size
                d = lbfgs_direction(flat_grad, old_dirs, old_stps, ro, H_diag, state["al"])

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss

            # -- the step length: the first step ever is scaled down by |g|_1
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr

            gtd = np.dot(flat_grad, d)
            if gtd > -tolerance_change:  # not a descent direction any more
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    # Re-evaluate for the next iteration (the last one's is left to the
                    # next step() call, whose first closure call gives it).
                    loss = float(self._call(closure))
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # -- stopping conditions
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if np.abs(np.multiply(d, t)).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = None if d is None else _make(d)
        state["t"] = t
        state["old_dirs"] = [_make(v) for v in old_dirs]
        state["old_stps"] = [_make(v) for v in old_stps]
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = None if prev_flat_grad is None else _make(prev_flat_grad)
        state["prev_loss"] = prev_loss
        return orig_loss

    # -- saving and loading -------------------------------------------------------------
    def load_state_dict(self, state_dict: dict) -> None:
        """As :meth:`Optimizer.load_state_dict`, for L-BFGS's state of flat vectors and
        histories (also PyTorch's: tensors become arrays of the parameters' dtype)."""
        if not (isinstance(state_dict, dict) and isinstance(state_dict.get("state"), dict)):
            super().load_state_dict(state_dict)  # raises its clear error
            return
        saved = state_dict["state"]
        super().load_state_dict(dict(state_dict, state={}))
        if not saved:
            return
        entry = saved.get(0, saved.get("0"))
        if entry is None or len(saved) != 1:
            raise ValueError(f"LBFGS.load_state_dict: expected the state of parameter 0 only, "
                             f"got the keys {sorted(saved, key=str)}")
        dtype = np.result_type(*[p._data.dtype for p in self._params])
        numel = sum(p._data.size for p in self._params)

        def vector(key, value):
            if value is None:
                return None
            arr = np.asarray(_array(value)).astype(dtype, copy=True)
            if arr.shape != (numel,):
                raise ShapeError(f"LBFGS.load_state_dict: state {key!r} has shape {arr.shape}, "
                                 f"but the parameters hold {numel} numbers")
            return _make(arr)

        def scalar(value):
            if value is None or isinstance(value, numbers.Integral):
                return value
            return np.asarray(_array(value)).astype(dtype).reshape(())[()]

        state = {}
        for key, value in entry.items():
            if key in ("d", "prev_flat_grad"):
                state[key] = vector(key, value)
            elif key in ("old_dirs", "old_stps"):
                state[key] = [vector(key, v) for v in value]
            elif key in ("ro", "al"):
                state[key] = [scalar(v) for v in value]
            elif key in ("func_evals", "n_iter"):
                state[key] = int(scalar(value))
            elif key in ("t", "H_diag"):
                state[key] = scalar(value)
            elif key == "prev_loss":
                state[key] = None if value is None else float(scalar(value))
            else:
                raise ValueError(f"LBFGS.load_state_dict: unknown state entry {key!r}")
        self.state[self._params[0]] = state


def _array(value):
    """The array of a tensor (None stays None)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value._data
    return np.asarray(value)
