"""LRScheduler.rescale: a live change of the peak learning rate moves a running schedule."""
import pytest

from backprop import nn, optim
from backprop.optim.lr_scheduler import LinearLR, StepLR, warmup_cosine


def _rates(peak, build, steps, change_at=None, new_peak=None):
    opt = optim.SGD(nn.Linear(2, 1).parameters(), lr=peak)
    sched = build(opt)
    rates = []
    for t in range(steps):
        if t == change_at:
            sched.rescale(new_peak / peak)
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates, opt, sched


@pytest.mark.parametrize("build", [
    lambda o: warmup_cosine(o, warmup_steps=5, total_steps=40),
    lambda o: LinearLR(o, start_factor=0.1, total_iters=20),
    lambda o: StepLR(o, step_size=7, gamma=0.5),
], ids=["warmup_cosine", "LinearLR", "StepLR"])
@pytest.mark.parametrize("change_at", [3, 12])
def test_rescaled_schedule_follows_the_schedule_of_the_new_peak(build, change_at):
    moved, opt, sched = _rates(0.1, build, 40, change_at, 0.02)
    fresh, _, _ = _rates(0.02, build, 40)
    assert moved[:change_at] == pytest.approx(_rates(0.1, build, change_at)[0])
    assert moved[change_at:] == pytest.approx(fresh[change_at:], rel=1e-12, abs=1e-18)
    assert opt.param_groups[0]["initial_lr"] == pytest.approx(0.02)
    assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_rescale_survives_a_state_dict_round_trip():
    _, opt, sched = _rates(0.1, lambda o: warmup_cosine(o, 5, 40), 10, 4, 0.05)
    again = warmup_cosine(optim.SGD(nn.Linear(2, 1).parameters(), lr=0.05), 5, 40)
    again.load_state_dict(sched.state_dict())          # (the rate in force is the group's)
    again.optimizer.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(10):
        sched.step()
        again.step()
    assert again.get_last_lr() == pytest.approx(sched.get_last_lr())


@pytest.mark.parametrize("factor", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_rescale_refuses_a_bad_factor(factor):
    opt = optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="SequentialLR.rescale: factor must be a positive"):
        warmup_cosine(opt, 5, 40).rescale(factor)
