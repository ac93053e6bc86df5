"""Named training recipes (``train --recipe``) and the SGD step schedule of a regression."""

import pytest
import torch

from retroscope.core.registry import get_task
from retroscope.learners.regression.module import Network, RegressionModule
from retroscope.train.config import train_config


def test_the_paper_recipe_sits_between_task_defaults_and_the_user():
    task = get_task("pmd")
    cfg = train_config(task, "data", recipe="paper")
    assert (cfg.optimizer, cfg.batch_size, cfg.lr, cfg.step_size, cfg.decay, cfg.epochs) == \
        ("sgd", 30, 1e-3, 20, 0.1, 30)
    assert cfg.recipe == "paper"
    assert train_config(task, "data", recipe="paper", lr=5e-3).lr == 5e-3
    assert train_config(task, "data").optimizer == "adamw"


def test_unknown_recipes_and_optimizers_are_refused_by_name():
    task = get_task("pmd")
    with pytest.raises(ValueError, match="no recipe 'adam'.*paper"):
        train_config(task, "data", recipe="adam")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_config(task, "data", optimizer="lbfgs")


def test_sgd_rate_drops_tenfold_after_step_size_epochs():
    network = Network("plain_cnn", {"input_size": [16, 8], "width": 4, "n_blocks": 2}, 1)
    module = RegressionModule(network, lr=1e-3, epochs=30, steps_per_epoch=10,
                              optimizer="sgd", momentum=0.9, step_size=20, decay=0.1)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    rates = []
    for _ in range(300):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(1e-3) and rates[199] == pytest.approx(1e-3)
    assert rates[200] == pytest.approx(1e-4) and rates[299] == pytest.approx(1e-4)


def test_the_command_line_names_an_unknown_recipe(tmp_path):
    from typer.testing import CliRunner

    from retroscope.cli import app

    result = CliRunner().invoke(app, ["train", "pmd", "--data", str(tmp_path), "--out",
                                      str(tmp_path / "run"), "--recipe", "adam"])
    assert result.exit_code == 2  # the command line's usage errors
    assert "no recipe 'adam'" in result.output
