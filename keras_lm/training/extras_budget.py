"""A share of a timed run's wall time for its evaluation-time extras.

The extras (samples, attention maps, loss by position, the embedding for
the projector) cost seconds at every evaluation: in a 1.5-minute run of the
char recipe they took about a tenth of the clock each time. In a run on the
clock (`--train_minutes`) that time is taken from training, so they get a
budget: `fraction` (5%) of the run's length, split evenly between them.
At an evaluation an extra runs only if, after it, there is still room in
its share for one more run of it at the end; the end of training always
draws each extra once more if its last picture is older than the final
step. An extra's cost is what its last run took (before any: `guess`).
A short clocked run then draws them at the end only; a long one
every few evaluations. A run by steps (no clock) keeps drawing them at
every evaluation: no budget (`ExtrasBudget.for_run` gives None).

Example:
>>> budget = ExtrasBudget(seconds=60, names=("samples", "attention"), fraction=0.05)
>>> budget.share  # 5% of 60 s, two extras
1.5
>>> budget.allows("samples")  # 2 x the 1 s guess > 1.5 s: wait for the end
False
>>> budget.spend("samples", 0.2)
>>> budget.allows("samples")  # 0.2 s spent, 2 x 0.2 s more fit in 1.5 s
True
"""

import time

# Before an extra's first run, what it is assumed to cost (seconds).
GUESS_SECONDS = 1.0


class ExtrasBudget:
    """Seconds each extra may spend in a run of `seconds`; see the module docstring."""

    def __init__(self, seconds, names, fraction=0.05, guess=GUESS_SECONDS):
        if not names:
            raise ValueError("names: at least one extra, got none")
        self.share = fraction * seconds / len(names)
        self.guess = guess
        self.spent = {name: 0.0 for name in names}
        self.cost = {}

    @classmethod
    def for_run(cls, clock, names, fraction=0.05):
        """The budget of a timed run (`clock`: its `WallClockSchedule`), else None."""
        if clock is None or not names:
            return None
        return cls(clock.seconds, names, fraction)

    def allows(self, name):
        """Whether `name` may run now and still run once more at the end."""
        cost = self.cost.get(name, self.guess)
        return self.spent[name] + 2 * cost <= self.share

    def spend(self, name, seconds):
        """Records that `name` ran for `seconds`."""
        self.spent[name] += seconds
        self.cost[name] = seconds


class BudgetedExtra:
    """A mixin for an extra callback: `run_extra(step)` at due evaluations while
    the budget allows, and at the end of training when the last run is stale.

    The class sets `extra_name`; the callback calls `self.extra_due(epoch)`
    from `on_epoch_end` and `self.extra_at_end()` from `on_train_end`, and
    defines `run_extra(step)`. With `budget=None` it runs at every due epoch
    and not again at the end (the behaviour without a clock).
    """

    extra_name = "extra"
    budget = None
    _last_step = None

    def extra_due(self, due):
        """Runs the extra now if `due` (its period) and the budget allows."""
        if due and (self.budget is None or self.budget.allows(self.extra_name)):
            self._run_timed()

    def extra_at_end(self):
        """Runs the extra if the budget skipped the last evaluations."""
        if self.budget is not None and self._last_step != self._step():
            self._run_timed()

    def _run_timed(self):
        started = time.perf_counter()
        step = self._step()
        self.run_extra(step)
        self._last_step = step
        if self.budget is not None:
            self.budget.spend(self.extra_name, time.perf_counter() - started)

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())
