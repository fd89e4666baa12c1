"""One change of both the optimizer's kind and the schedule (as a link or a preset sends
it): the new optimizer must not carry the old schedule over when the new settings have none."""
from backprop.lab.session import LabSession


def test_optimizer_and_schedule_changed_together():
    s = LabSession({"schedule": "warmup_cosine", "optimizer": "adam", "lr": 0.03},
                   diagnostics=False)
    s.step(5)
    s.apply({"optimizer": "sgd", "schedule": "constant"})
    assert type(s._optimizer).__name__ == "SGD"
    assert s._trainer.scheduler is None
    assert s._optimizer.param_groups[0]["lr"] == 0.03     # the setting, no schedule
    s.step(2)
    assert s.step_count == 7


def test_optimizer_changed_keeps_the_running_schedule():
    s = LabSession({"schedule": "warmup_cosine", "optimizer": "adam", "lr": 0.03},
                   diagnostics=False)
    s.step(5)
    lr = s._optimizer.param_groups[0]["lr"]
    s.apply({"optimizer": "sgd"})
    assert s._trainer.scheduler is not None and s._trainer.scheduler.last_epoch == 5
    assert s._optimizer.param_groups[0]["lr"] == lr
