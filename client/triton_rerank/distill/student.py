"""The student: BASE's own first layers and head, trained to give BASE's scores (MSE on BASE's raw
logits, so that its scores stay on BASE's scale), to a time budget.

Starting from BASE's layers, not from a small pretrained model, keeps BASE's vocabulary, tokenizer
and max length, and the student starts close: the first layers already hold most of what BASE reads.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from triton_rerank.errors import RerankInputError

WARMUP = 0.1


def make_student(base: str, layers: int, folder: Path, max_length: int):
    """BASE cut to its first ``layers`` layers, saved in ``folder``; (the transformers model, its tokenizer)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(base)
    depth = getattr(config, "num_hidden_layers", None)
    if depth is None:
        raise RerankInputError(f"--model {base} ({config.model_type}) has no layers a student can be cut from")
    if layers >= depth:
        raise RerankInputError(
            f"--layers {layers}: {base} has {depth} layers, so a student of {layers} would be no cheaper; "
            f"give --layers below {depth}"
        )
    model = AutoModelForSequenceClassification.from_pretrained(base, num_hidden_layers=layers)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.model_max_length = max_length  # what CrossEncoder(folder) and the export read back
    save(model, tokenizer, folder)
    return model, tokenizer


def save(model, tokenizer, folder: Path) -> None:
    """A sentence-transformers CrossEncoder folder: raw logits, as BASE scores."""
    model.config.sentence_transformers = {"activation_fn": "torch.nn.modules.linear.Identity"}
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def step_seconds_estimate(teacher_rate: float, batch_size: int, layers: int, base_layers: int) -> float:
    """A training step's seconds, about: forward and backward (3 forward passes) of the student's
    share of BASE's layers, from the rate BASE scored pairs at."""
    return 3 * batch_size / teacher_rate * max(layers / base_layers, 0.15)


def fit(model, tokenizer, pairs, labels, *, seconds: float, max_steps: int | None, batch_size: int,
        learning_rate: float, seed: int, max_length: int) -> dict:  # fmt: skip
    """Train ``model`` on (pair, BASE's score) by MSE until ``seconds`` or ``max_steps``, with a linear
    warm-up over the first 10 % and decay to 0 at the end of whichever budget comes first. The
    schedule, steps and losses as run."""
    import torch

    torch.manual_seed(seed)
    order_rng = random.Random(seed)
    steps_per_epoch = max(1, len(pairs) // batch_size)
    total = min(max_steps or steps_per_epoch * 100, steps_per_epoch * 100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    targets = torch.tensor(np.asarray(labels, dtype=np.float32))
    started, step, losses = time.perf_counter(), 0, []
    model.train()
    done = 0.0
    while done < 1.0:
        order = list(range(len(pairs)))
        order_rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            done = max((time.perf_counter() - started) / seconds, step / total)
            if done >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate * (done / WARMUP if done < WARMUP else (1 - done) / (1 - WARMUP))
            rows = order[start : start + batch_size]
            encoded = tokenizer([pairs[i][0] for i in rows], [pairs[i][1] for i in rows], truncation=True,
                                max_length=max_length, padding=True, return_tensors="pt")  # fmt: skip
            loss = torch.nn.functional.mse_loss(model(**encoded).logits[:, 0], targets[rows])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            losses.append(float(loss.detach()))
            if step % 25 == 0:
                print(f"distill: step {step}, loss {np.mean(losses[-25:]):.3f}, "
                      f"{time.perf_counter() - started:.0f} of {seconds:.0f} s", flush=True)  # fmt: skip
    model.eval()
    seconds_spent = time.perf_counter() - started
    return {
        "loss": "MSE on BASE's raw scores",
        "steps": step,
        "pairs_trained": step * batch_size,
        "epochs_of_data": round(step * batch_size / max(1, len(pairs)), 2),
        "training_seconds": round(seconds_spent, 1),
        "final_loss": round(float(np.mean(losses[-25:])), 4) if losses else None,
        "schedule": "AdamW, linear warm-up over 10 % of the budget, linear decay to 0 at its end",
        "learning_rate": learning_rate,
        "batch_size": batch_size,
    }
