"""ExtrasBudget: a timed run's extras (samples, views) at most their share of the clock."""

import types

import numpy as np
import pytest

from keras_lm.training.callbacks import extra_names
from keras_lm.training.config import TrainConfig
from keras_lm.training.extras_budget import BudgetedExtra, ExtrasBudget


class FakeClock:
    seconds = 90.0


class Recorder(BudgetedExtra):
    """An extra that records the steps it ran at, costing `cost` seconds each (faked)."""

    extra_name = "recorder"

    def __init__(self, budget, cost=0.0):
        self.budget = budget
        self.cost = cost
        self.steps = []
        self.model = types.SimpleNamespace(optimizer=types.SimpleNamespace(iterations=None))
        self.advance(0)

    def run_extra(self, step):
        self.steps.append(step)

    def advance(self, step):
        self.model.optimizer.iterations = types.SimpleNamespace(numpy=lambda: np.int64(step))


def run_epochs(extra, steps, spend=None):
    for step in steps:
        extra.advance(step)
        extra.extra_due(True)
        if spend is not None and extra.steps and extra.steps[-1] == step:
            extra.budget.cost[extra.extra_name] = spend  # what the run "took"
            extra.budget.spent[extra.extra_name] += spend
    extra.extra_at_end()


def test_without_budget_every_evaluation_and_nothing_more_at_the_end():
    extra = Recorder(None)
    run_epochs(extra, [10, 20, 30])
    assert extra.steps == [10, 20, 30]


def test_expensive_extra_in_a_short_timed_run_draws_at_the_end_only():
    # 90 s, 4 extras: 1.125 s each; the 1 s guess x 2 does not fit.
    budget = ExtrasBudget(FakeClock.seconds, ("recorder", "b", "c", "d"))
    extra = Recorder(budget)
    run_epochs(extra, [10, 20, 30])
    assert extra.steps == [30]


def test_cheap_extra_runs_while_the_share_allows_then_at_the_end():
    budget = ExtrasBudget(100.0, ("recorder",), fraction=0.05, guess=1.0)  # share 5 s
    extra = Recorder(budget)
    run_epochs(extra, [10, 20, 30, 40, 50], spend=1.5)
    # 0+2 ok (spent 1.5); 1.5+3 ok (3.0); 3+3 > 5 stop; the end draws step 50.
    assert extra.steps == [10, 20, 50]


def test_the_end_does_not_repeat_a_picture_of_the_final_step():
    budget = ExtrasBudget(1000.0, ("recorder",))
    extra = Recorder(budget)
    run_epochs(extra, [10, 20])
    assert extra.steps == [10, 20]


def test_budget_spends_measured_time():
    budget = ExtrasBudget(100.0, ("a", "b"), fraction=0.1)
    assert budget.share == pytest.approx(5.0)
    budget.spend("a", 2.0)
    assert budget.allows("a") is False  # 2 + 2 x 2 > 5
    assert budget.allows("b") is True  # its own share


def test_only_timed_runs_get_a_budget_and_it_names_the_runs_extras():
    config = TrainConfig.from_recipe("char")
    source = types.SimpleNamespace(has_text=True)
    names = extra_names(config, source, chief=True)
    assert names == ("samples", "attention_maps", "position_loss", "embedding_projector")
    assert ExtrasBudget.for_run(None, names) is None
    assert ExtrasBudget.for_run(FakeClock(), names).share == pytest.approx(0.05 * 90 / 4)
    lstm = TrainConfig.from_recipe("lstm_quickstart", samples=False)
    assert extra_names(lstm, source, chief=True) == ("position_loss", "embedding_projector")
    assert extra_names(config, source, chief=False) == ()
