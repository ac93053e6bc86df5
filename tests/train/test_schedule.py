"""The schedules that also follow a time budget: one-cycle (regression) and step (detection)."""

import pytest
import torch

from retroscope.train.schedules import TimedOneCycleLR, TimedStepLR


def _opt():
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)


def _lrs(sched, steps):
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    return out


def test_without_a_time_limit_it_is_onecycle():
    kw = dict(max_lr=1e-3, epochs=4, steps_per_epoch=10, pct_start=0.15)
    plain = torch.optim.lr_scheduler.OneCycleLR(_opt(), **kw)
    timed = TimedOneCycleLR(_opt(), time_fraction=lambda: None, **kw)
    assert _lrs(timed, 40) == pytest.approx(_lrs(plain, 40))


def test_the_clock_moves_the_cycle_on_when_steps_lag():
    kw = dict(max_lr=1e-3, epochs=4, steps_per_epoch=10, pct_start=0.15)
    clock = {"used": 0.0}
    timed = TimedOneCycleLR(_opt(), time_fraction=lambda: clock["used"], **kw)
    reference = _lrs(torch.optim.lr_scheduler.OneCycleLR(_opt(), **kw), 40)
    early = _lrs(timed, 3)
    assert early == pytest.approx(reference[:3])  # the clock is behind the steps: steps rule
    clock["used"] = 0.5  # half the time gone after 3 of 40 steps
    timed.optimizer.step()
    timed.step()
    assert timed.get_last_lr()[0] == pytest.approx(reference[int(0.5 * 39)])
    clock["used"] = 1.2  # past the budget: the end of the cycle, not an error
    timed.optimizer.step()
    timed.step()
    assert timed.get_last_lr()[0] == pytest.approx(reference[-1])
    assert reference[-1] < 1e-3 * 1e-4


def test_checkpoint_state_is_plain_data_and_keeps_the_clock(tmp_path):
    kw = dict(max_lr=1e-3, epochs=2, steps_per_epoch=5)
    clock = lambda: 0.3  # noqa: E731
    sched = TimedOneCycleLR(_opt(), time_fraction=clock, **kw)
    _lrs(sched, 3)
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    fresh = TimedOneCycleLR(_opt(), time_fraction=clock, **kw)
    fresh.load_state_dict(state)
    assert fresh.time_fraction is clock and fresh.last_epoch == sched.last_epoch


def _sgd():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=5e-3, momentum=0.9)


def test_without_a_clock_the_step_schedule_is_warmup_chained_with_steplr():
    spe, epochs = 7, 6
    opt = _sgd()
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-3, total_iters=5)
    steps = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    reference = []
    for _ in range(epochs):
        for _ in range(spe):
            reference.append(opt.param_groups[0]["lr"])
            opt.step()
            warm.step()
        steps.step()
    timed = TimedStepLR(_sgd(), step_size=2, gamma=0.1, steps_per_epoch=spe, epochs=epochs,
                        warmup_steps=5, time_fraction=lambda: None)
    assert _lrs(timed, spe * epochs) == pytest.approx(reference)
    assert reference[-1] == pytest.approx(5e-3 * 1e-2)  # two decays in six epochs


def test_the_clock_brings_the_decays_forward():
    clock = {"used": 0.0}
    timed = TimedStepLR(_sgd(), step_size=3, gamma=0.1, steps_per_epoch=100, epochs=9,
                        time_fraction=lambda: clock["used"])
    _lrs(timed, 10)
    assert timed.get_last_lr()[0] == pytest.approx(5e-3)
    clock["used"] = 0.5  # epoch 4.5 of 9 by the clock after 0.1 epochs of steps: one decay
    _lrs(timed, 1)
    assert timed.get_last_lr()[0] == pytest.approx(5e-4)
    clock["used"] = 1.5  # past the budget: the last planned epoch (8 of 0-8: two decays),
    _lrs(timed, 1)       # never one that counting the steps would not reach
    assert timed.get_last_lr()[0] == pytest.approx(5e-5)


def test_step_schedule_checkpoint_is_plain_data(tmp_path):
    clock = lambda: 0.4  # noqa: E731
    kw = dict(step_size=2, gamma=0.5, steps_per_epoch=3, epochs=4, warmup_steps=2)
    sched = TimedStepLR(_sgd(), time_fraction=clock, **kw)
    _lrs(sched, 4)
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    fresh = TimedStepLR(_sgd(), time_fraction=clock, **kw)
    fresh.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert fresh.time_fraction is clock and fresh.last_epoch == sched.last_epoch


def test_step_schedule_refuses_empty_epochs():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        TimedStepLR(_sgd(), step_size=2, gamma=0.1, steps_per_epoch=0, epochs=3)
