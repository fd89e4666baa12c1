"""A scheduler's per-group lists pair up with the optimizer's groups one to one: a group added
after the scheduler was made, or a saved state of another shape, is refused by name instead of
being left unscheduled or half loaded (issue 17: zip(strict=True))."""
import pytest

import backprop
from backprop import optim
from backprop.optim import lr_scheduler as S


def _opt():
    return optim.SGD([backprop.nn.Parameter(backprop.ones(1))], lr=0.1, momentum=0.9)


def _add_group(opt):
    opt.add_param_group({"params": [backprop.nn.Parameter(backprop.ones(1))]})


@pytest.mark.parametrize("make", [
    lambda o: S.LambdaLR(o, lambda e: 0.5 ** e),
    lambda o: S.MultiplicativeLR(o, lambda e: 0.9),
    lambda o: S.CosineAnnealingLR(o, T_max=4),
    lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3),
    lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2),
], ids=["LambdaLR", "MultiplicativeLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
        "CyclicLR"])
def test_a_group_added_after_the_scheduler_is_refused_by_name(make):
    opt = _opt()
    sched = make(opt)
    opt.step()
    sched.step()
    _add_group(opt)
    name = type(sched).__name__
    with pytest.raises(ValueError, match=rf"{name}: the optimizer has 2 parameter groups but the "
                                         rf"scheduler has 1 values per group"):
        for _ in range(6):  # (CosineAnnealingLR pairs the groups with base_lrs at its minimum)
            opt.step()
            sched.step()


def test_sequential_state_of_another_length_is_refused_before_anything_loads():
    opt = _opt()
    one = S.SequentialLR(opt, [S.ConstantLR(opt, factor=0.5, total_iters=2)], milestones=[])
    opt2 = _opt()
    two = S.SequentialLR(opt2, [S.ConstantLR(opt2, factor=0.5, total_iters=2),
                                S.ExponentialLR(opt2, gamma=0.9)], milestones=[2])
    two.step()
    with pytest.raises(ValueError, match=r"SequentialLR.load_state_dict: the state holds 2 "
                                         r"schedulers, but this scheduler has 1"):
        one.load_state_dict(two.state_dict())
    assert one.last_epoch == 0  # untouched


def test_lambda_state_of_another_length_is_refused():
    opt = _opt()
    _add_group(opt)
    two = S.LambdaLR(opt, [lambda e: 1.0, lambda e: 0.5])
    one = S.LambdaLR(_opt(), lambda e: 1.0)
    with pytest.raises(ValueError, match=r"LambdaLR.load_state_dict: the state holds 2 "
                                         r"lr_lambdas, but this scheduler has 1"):
        one.load_state_dict(two.state_dict())
    state = one.state_dict()
    del state["lr_lambdas"]  # a state without them still loads
    one.load_state_dict(state)
