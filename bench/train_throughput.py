"""Student training throughput: the project's trainer vs a bare PyTorch loop vs TRL's SFTTrainer,
on the same architecture and data, side by side in one process.

Every contender makes whole passes over the same examples (each batch, or each example for TRL,
exactly `--passes` times), so all of them process the same real (non-padding) tokens, and tokens/s
counts exactly those. The project's figure includes its own tokenization and batching; the bare loop
gets pre-built batches and does only forward, backward, step. Each contender runs `--repeats` times,
interleaved, and the median is reported.

    python bench/train_throughput.py [--passes 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import emit, skill_pairs, tokenizer_for

from synthloop.config import load_recipe
from synthloop.training.model import build_scratch_model
from synthloop.training.packing import length_grouped_batches, tokenize_pairs
from synthloop.training.trainer import TrainSettings, train


def fresh_model(tokenizer):
    a = load_recipe().student.architecture
    return build_scratch_model(
        tokenizer, a.family, a.hidden_size, a.layers, a.heads, a.intermediate_size, a.max_positions, 0
    )


def run_project(tokenizer, pairs, passes, batch_size) -> float:
    model, start = fresh_model(tokenizer), time.perf_counter()
    examples = tokenize_pairs(tokenizer, pairs, 256)
    batches = length_grouped_batches(examples, batch_size, tokenizer.pad_token_id, 0)
    # Whole passes: the trainer visits every batch once per pass (in its own shuffled order).
    train(model, batches, TrainSettings(passes * len(batches), batch_size, 3e-3, 10, 0.1, 1.0, 0))
    seconds = time.perf_counter() - start
    return passes * non_pad(batches, tokenizer.pad_token_id) / seconds


def non_pad(batches, pad_id) -> int:
    return sum(int((ids != pad_id).sum()) for ids, _ in batches)


def run_bare(tokenizer, batches, passes) -> float:
    model = fresh_model(tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    start = time.perf_counter()
    for step in range(passes * len(batches)):
        ids, labels = batches[step % len(batches)]
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return passes * non_pad(batches, tokenizer.pad_token_id) / seconds


def run_trl(tokenizer, pairs, passes, batch_size) -> float | str:
    try:
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer
    except ImportError:
        return "not installed (pip install -e '.[bench]')"
    import tempfile

    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    data = Dataset.from_list([{"prompt": p, "completion": c} for p, c in pairs])
    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(
            output_dir=out,
            num_train_epochs=passes,  # every example once per pass, like the other contenders
            per_device_train_batch_size=batch_size,
            learning_rate=3e-3,
            logging_steps=10**6,
            save_strategy="no",
            report_to=[],
            packing=False,
            max_length=256,
            completion_only_loss=True,
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
            train_sampling_strategy="group_by_length",  # the same length grouping as the project
        )
        trainer = SFTTrainer(model=fresh_model(tokenizer), args=config, train_dataset=data, processing_class=tokenizer)
        lengths = [len(x) for x in trainer.train_dataset["input_ids"]]
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return passes * sum(lengths) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=1, help="passes over the examples per contender")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    recipe = load_recipe()
    threads = torch.get_num_threads()
    batch_size = recipe.student.train.batch_size
    pairs = skill_pairs(400)
    tokenizer = tokenizer_for(pairs)
    batches = length_grouped_batches(tokenize_pairs(tokenizer, pairs, 256), batch_size, tokenizer.pad_token_id, 0)
    project, bare, trl = [], [], []
    for _ in range(args.repeats):
        bare.append(run_bare(tokenizer, batches, args.passes))
        project.append(run_project(tokenizer, pairs, args.passes, batch_size))
        trl.append(run_trl(tokenizer, pairs, args.passes, batch_size))
    median_project, median_bare = statistics.median(project), statistics.median(bare)
    trl_figure = statistics.median(trl) if all(isinstance(x, float) for x in trl) else trl[0]
    emit(
        {
            "bench": "train_throughput",
            "passes": args.passes,
            "steps_per_contender": args.passes * len(batches),
            "repeats": args.repeats,
            "batch_size": batch_size,
            "torch_threads": threads,
            "project_tokens_per_s": round(median_project),
            "bare_loop_tokens_per_s": round(median_bare),
            "project_over_bare": round(median_project / median_bare, 3),
            "trl_sft_tokens_per_s": round(trl_figure) if isinstance(trl_figure, float) else trl_figure,
            "trl_over_bare": round(trl_figure / median_bare, 3) if isinstance(trl_figure, float) else None,
        }
    )


if __name__ == "__main__":
    main()
