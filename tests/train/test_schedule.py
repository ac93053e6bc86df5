"""The one-cycle schedule that also follows a time budget."""

import pytest
import torch

from retroscope.train.module import TimedOneCycleLR


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
