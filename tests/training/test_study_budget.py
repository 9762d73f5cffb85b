"""The study's budget options: per-dataset fine-tuning epochs and shear reach exactly the runs
they name, and the one-line reproduce command gives back the same budget."""

from __future__ import annotations

import shlex

import pytest

from benchmarks.study import Budget, parse_args
from training.config_io import load_config
from training.recipes.classify import ClassifyRecipe
from training.recipes.pretrain import PretrainRecipe


def test_per_dataset_values_reach_only_their_dataset() -> None:
    args = parse_args(
        ["--finetune-epochs", "30", "utd=100", "--semi-epochs", "utd=300", "--max-shear", "utd=0.3"]
    )
    budget = Budget(args)
    finetune = load_config("utd_finetune", ClassifyRecipe)
    utd = budget.window(finetune, "utd", "finetune", seed=1)
    assert (utd.loop.epochs, utd.data.max_shear, utd.loop.seed) == (100, 0.3, 1)
    semi = budget.window(finetune, "utd", "semi", seed=0)
    assert (semi.loop.epochs, semi.data.max_shear) == (300, 0.3)
    ucla = budget.window(load_config("nwucla_finetune", ClassifyRecipe), "nwucla", "semi", 0)
    # NW-UCLA keeps the defaults: 30 epochs, no shear
    assert (ucla.loop.epochs, ucla.data.max_shear) == (30, 0.0)
    assert budget.tag("utd", "finetune") == "100ep-shear0.3"
    assert budget.tag("nwucla", "finetune") == "30ep"


def test_shear_never_reaches_pretraining_or_linear_evaluation() -> None:
    budget = Budget(parse_args(["--max-shear", "0.3"]))
    for stage in ("stage1", "stage2"):
        recipe = budget.window(load_config("utd_mamp", PretrainRecipe), "utd", stage, 0)
        assert recipe.data.max_shear == 0.0
    base = load_config("utd_linear", ClassifyRecipe, ["pretrained=encoder.pt"])
    linear = budget.window(base, "utd", "linear", 0)
    assert linear.data.max_shear == 0.0
    assert budget.tag("utd", "linear") == "100ep"
    tuned = budget.window(load_config("utd_finetune", ClassifyRecipe), "utd", "finetune", 0)
    assert tuned.data.max_shear == 0.3


def test_a_value_without_key_replaces_the_per_dataset_default() -> None:
    args = parse_args(["--finetune-epochs", "50", "--max-shear", "nwucla=0.2"])
    assert args.finetune_epochs == {"": 50}
    assert args.max_shear == {"": 0.0, "utd": 0.3, "nwucla": 0.2}


def test_reproduce_command_gives_the_same_budget() -> None:
    args = parse_args(["--datasets", "utd", "--finetune-epochs", "30", "utd=100"])
    again = parse_args(shlex.split(args.command)[3:])
    assert again.command == args.command
    assert again.finetune_epochs == {"": 30, "utd": 100}


def test_an_unknown_dataset_key_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--finetune-epochs", "ntu=100"])
    assert "'ntu' is not one of utd, nwucla" in capsys.readouterr().err
