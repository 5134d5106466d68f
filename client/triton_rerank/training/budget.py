"""Training to a time budget: a learning-rate schedule that ends with the budget, dev evaluations
evenly over it, the best state kept, and a progress bar whose ETA is the budget's.

The schedule runs on the fraction of the budget spent (time spent in dev evaluations excluded), or
of the steps the data holds (or the step budget, when smaller), whichever is further: linear warm-up
over the first 10 %, then linear decay to 0. A budgeted run thus ends as a schedule should, at a
rate of 0, not cut mid-warm-up; on a faster machine it takes more steps in the same minutes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from transformers import TrainerCallback

WARMUP = 0.1


class Budget(TrainerCallback):
    """Stops training at ``seconds`` of training time; evaluates ``evaluations`` times on the way."""

    def __init__(self, seconds: float, total_steps: int, evaluate: Callable[[], dict], evaluations: int) -> None:
        self.seconds, self.total_steps, self.evaluate = seconds, max(1, total_steps), evaluate
        self.marks = [(n + 1) / evaluations for n in range(evaluations)]
        self.curve: list[dict] = []  # {"minutes", "step", **what evaluate returns} per evaluation
        self.started: float | None = None
        self.evaluating = 0.0  # seconds spent in dev evaluations, not training
        self.step = 0
        self.loss: float | None = None
        self._bar = None

    def fraction(self) -> float:
        if self.started is None:
            return 0.0
        spent = (time.perf_counter() - self.started - self.evaluating) / self.seconds
        return min(1.0, max(spent, self.step / self.total_steps))

    def learning_rate_factor(self, _step: int) -> float:
        done = self.fraction()
        return done / WARMUP if done < WARMUP else max(0.0, (1 - done) / (1 - WARMUP))

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm import tqdm

        self.started = time.perf_counter()
        self._bar = tqdm(total=round(self.seconds), unit="s", desc="train", file=sys.stderr, mininterval=2)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = logs["loss"]

    def on_step_end(self, args, state, control, **kwargs):
        self.step = state.global_step
        done = self.fraction()
        if self.marks and done >= self.marks[0]:
            while self.marks and done >= self.marks[0]:
                self.marks.pop(0)
            self._evaluate()
        if done >= 1.0:
            control.should_training_stop = True
        self._show(done)

    def on_train_end(self, args, state, control, **kwargs):
        if self.marks:  # the data ran out before the budget: the last state is still judged
            self.marks.clear()
            self._evaluate()
        if self._bar is not None:
            self._bar.close()

    def _evaluate(self) -> None:
        started = time.perf_counter()
        values = self.evaluate()
        self.evaluating += time.perf_counter() - started
        minutes = (time.perf_counter() - self.started - self.evaluating) / 60
        self.curve.append({"minutes": round(minutes, 2), "step": self.step, **values})

    def _show(self, done: float) -> None:
        if self._bar is None:
            return
        self._bar.n = min(self._bar.total, round(done * self.seconds))
        postfix = {"step": self.step}
        if self.loss is not None:
            postfix["loss"] = f"{self.loss:.3f}"
        if self.curve:
            postfix["dev nDCG@10"] = f"{self.curve[-1]['dev_ndcg@10']:.4f}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()
