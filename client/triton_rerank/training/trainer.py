"""The fit itself, on sentence-transformers' ``CrossEncoderTrainer``: the groups of a positive and
its negatives as a dataset, the loss (binary cross-entropy with ``pos_weight``, or LambdaLoss on each
group), the budget's schedule and dev evaluations, and the best dev state loaded back at the end."""

from __future__ import annotations

import math
import random
import tempfile
import time

import triton_rerank.training.model as model_module
from triton_rerank.errors import RerankInputError
from triton_rerank.training.budget import Budget
from triton_rerank.training.config import TrainConfig
from triton_rerank.training.dev import DevResult, DevSet
from triton_rerank.training.mining import sample_groups

MIN_STEPS = 10  # fewer cannot warm up and decay: such a budget is refused before training
BACKWARD_COST = 3  # a training step costs about 3 forward passes (forward + backward)


def fit(config: TrainConfig, kind: str, cross_encoder, sources, dev_set: DevSet, base: DevResult, device):
    """Train to the budget on ``sources``, [(training data, its negative pools)], their groups
    shuffled together. (best dev result, the dev curve, the recipe as run)."""
    import torch

    group = 1 + config.hard_negatives + config.random_negatives
    batch_pairs = config.batch_size * (group if config.loss == "lambda" else 1)
    seconds, step_seconds = training_seconds(config, base, batch_pairs)
    expected_pairs = 2 * seconds / step_seconds * batch_pairs  # twice what the budget is likely to use
    positives = sum(len(pools) for _, pools in sources)
    epochs = max(1, min(100, math.ceil(expected_pairs / (positives * group))))
    counts = {"hard": config.hard_negatives, "random_": config.random_negatives, "epochs": epochs}
    groups = [
        sampled
        for n, (data, pools) in enumerate(sources)
        for sampled in sample_groups(data, pools, **counts, seed=config.seed + n)
    ]
    random.Random(config.seed).shuffle(groups)  # the sources' groups mixed, not one after the other
    dataset, loss = _dataset_and_loss(config, cross_encoder, groups, group)
    best = {"result": base, "state": None}

    def evaluate() -> dict:  # the first trained state is always kept, so that there is one to judge
        result = dev_set.evaluate(cross_encoder, config.blend)
        if best["state"] is None or result.blended_ndcg > best["result"].blended_ndcg:
            state = {k: v.detach().to("cpu", copy=True) for k, v in cross_encoder.state_dict().items()}
            best.update(result=result, state=state)
        return {"dev_ndcg@10": round(result.blended_ndcg, 4), "reranker_alone": round(result.ndcg, 4)}

    steps = math.ceil(len(dataset) / config.batch_size)  # what the data holds, or the step budget if smaller
    budget = Budget(seconds, min(steps, config.max_steps or steps), evaluate, config.evaluations)
    optimizer, rates = model_module.optimizer(cross_encoder, kind, config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, budget.learning_rate_factor)
    trained_for = _run_trainer(config, cross_encoder, dataset, loss, (optimizer, schedule), budget, device)
    cross_encoder.load_state_dict(best["state"])
    cross_encoder.eval()
    recipe = {
        "loss": config.loss,
        "pos_weight": group - 1 if config.loss == "bce" else None,
        "hard_negatives": config.hard_negatives,
        "random_negatives": config.random_negatives,
        "learning_rates": rates,
        "schedule": "linear warm-up over 10 % of the budget, linear decay to 0 at its end",
        "batch_size": config.batch_size,
        "max_length": config.max_length,
        "max_minutes": config.max_minutes,
        "max_steps": config.max_steps,
        "steps": budget.step,
        "pairs_trained": budget.step * batch_pairs,
        "epochs_of_data": round(budget.step * config.batch_size / len(dataset) * epochs, 2),
        "training_seconds": round(trained_for, 1),
        "pairs_per_second": round(budget.step * batch_pairs / max(trained_for, 1e-9), 2),
        "peak_memory_mib": peak_memory_mib(device),
    }
    return best["result"], budget.curve, recipe


def training_seconds(config: TrainConfig, base: DevResult, batch_pairs: int) -> tuple[float, float]:
    """(seconds left to train once the dev evaluations are paid for, seconds a step takes about),
    estimated from the base model's dev evaluation; a budget that leaves too few steps is refused."""
    step_seconds = BACKWARD_COST * batch_pairs * base.seconds / max(1, base.pairs)
    evaluations = config.evaluations * base.seconds
    seconds = config.max_minutes * 60 - evaluations
    if seconds < MIN_STEPS * step_seconds:
        needed = math.ceil((MIN_STEPS * step_seconds + evaluations) / 6) / 10
        raise RerankInputError(
            f"--max-minutes {config.max_minutes:g} is too small: {config.evaluations} dev evaluations take about "
            f"{evaluations:.0f} s and a step about {step_seconds:.1f} s here; give at least {needed:g} minutes "
            "(or fewer --evaluations, a smaller --dev-depth)"
        )
    return seconds, step_seconds


def _dataset_and_loss(config: TrainConfig, cross_encoder, groups, group: int):
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, LambdaLoss

    if config.loss == "lambda":
        columns = {"query": [g[0] for g in groups], "docs": [g[1] for g in groups], "labels": [g[2] for g in groups]}
        return Dataset.from_dict(columns), LambdaLoss(cross_encoder, mini_batch_size=config.batch_size)
    rows = [(q, d, y) for q, docs, labels in groups for d, y in zip(docs, labels, strict=True)]
    columns = {"query": [r[0] for r in rows], "document": [r[1] for r in rows], "label": [r[2] for r in rows]}
    return Dataset.from_dict(columns), BinaryCrossEntropyLoss(cross_encoder, pos_weight=torch.tensor(group - 1.0))


def _run_trainer(config: TrainConfig, cross_encoder, dataset, loss, optimizers, budget: Budget, device: str) -> float:
    """Seconds spent training (dev evaluations excluded)."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from transformers import PrinterCallback

    with tempfile.TemporaryDirectory(prefix="triton-rerank-train-") as scratch:
        arguments = CrossEncoderTrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=config.batch_size,
            num_train_epochs=1,  # the dataset holds as many epochs as the budget is likely to use
            save_strategy="no",  # the best state is kept in memory; the output is written once, at the end
            eval_strategy="no",  # the budget evaluates on dev
            logging_steps=5,
            report_to="none",
            disable_tqdm=True,
            seed=config.seed,
            use_cpu=device == "cpu",
            **mixed_precision(device),
        )
        trainer = CrossEncoderTrainer(
            model=cross_encoder,
            args=arguments,
            train_dataset=dataset,
            loss=loss,
            optimizers=optimizers,
            callbacks=[budget],
        )
        trainer.remove_callback(PrinterCallback)  # the budget's progress bar shows the loss
        started = time.perf_counter()
        trainer.train()
        return time.perf_counter() - started - budget.evaluating


def mixed_precision(device: str) -> dict:
    """bf16 autocast on a CUDA device that has it, else fp16; full precision on CPU."""
    import torch

    if device != "cuda":
        return {}
    return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}


def peak_memory_mib(device: str) -> dict:
    import resource

    import torch

    peak = {"process_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if device == "cuda":
        peak["cuda"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return peak
