"""A reward-model scorer: a local Hugging Face sequence-classification checkpoint scores each
(question, written answer) pair; rows scoring below `threshold` are rejected (`low_reward`).

The score is the model's logit when it has one label (the usual reward-model head), else the
probability of its positive label: one named like good/positive/chosen/correct/acceptable, or the
last label. The pair is formatted with the tokenizer's chat template when it has one (user: the
question, assistant: the answer), else as a text pair. Inputs longer than `max_length` tokens are
cut, so an enormous row is scored on its beginning instead of exhausting memory."""

from __future__ import annotations

from pathlib import Path

import torch

from synthloop.curation.base import BatchStage
from synthloop.curation.judge import written_answer
from synthloop.records import Record
from synthloop.storage.input_files import InputFileError

CHARS_PER_TOKEN_MAX = 32
POSITIVE_LABELS = ("good", "positive", "chosen", "correct", "acceptable", "label_1")


class RewardModelError(InputFileError):
    """The checkpoint cannot be used as a reward model (missing, or not a sequence classifier)."""


def check_model_folder(path: str | Path) -> None:
    """Raise `RewardModelError` unless `path` holds a saved model (cheap: nothing is loaded)."""
    if not (Path(path) / "config.json").exists():
        raise RewardModelError(f"{path}: no config.json; give the folder of a saved sequence-classification model")


class RewardModel(BatchStage):
    name = "reward"

    def __init__(
        self, path: str | Path, threshold: float = 0.0, batch_size: int = 16, max_length: int = 512, device: str = "cpu"
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        check_model_folder(path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as err:
            raise RewardModelError(f"{path}: cannot load it as a sequence-classification model ({err})") from err
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(device).eval()
        self.threshold, self.batch_size, self.max_length, self.device = threshold, batch_size, max_length, device
        self.positive = positive_label(self.model.config.id2label, self.model.config.num_labels)

    def text(self, question: str, answer: str) -> str | tuple[str, str]:
        # No token is longer than CHARS_PER_TOKEN_MAX characters in practice: cutting first keeps a 10 MB
        # row from being tokenized whole only to be truncated.
        cut = self.max_length * CHARS_PER_TOKEN_MAX
        question, answer = question[:cut], answer[:cut]
        if self.tokenizer.chat_template:
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        return question, answer

    @torch.no_grad()
    def scores(self, pairs: list[tuple[str, str]]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            texts = [self.text(q, a) for q, a in pairs[start : start + self.batch_size]]
            if isinstance(texts[0], tuple):
                firsts, seconds = zip(*texts, strict=True)
                batch = self.tokenizer(list(firsts), list(seconds), truncation="longest_first", **self._shape())
            else:
                batch = self.tokenizer(texts, truncation=True, **self._shape())
            logits = self.model(**batch.to(self.device)).logits.float()
            if self.positive is None:
                out.extend(logits[:, 0].tolist())
            else:
                out.extend(logits.softmax(-1)[:, self.positive].tolist())
        return out

    def _shape(self) -> dict:
        return {"max_length": self.max_length, "padding": True, "return_tensors": "pt"}

    def judge_batch(self, rows: list[Record]) -> None:
        for record, score in zip(rows, self.scores([(r.question, written_answer(r)) for r in rows]), strict=True):
            if score < self.threshold:
                record.add_verdict(self.name, False, "low_reward", score, f"{score:.3f} < {self.threshold}")
            else:
                record.add_verdict(self.name, True, None, score)


def positive_label(id2label: dict[int, str], num_labels: int) -> int | None:
    """None for a single-logit head; else the index of the label that means "good"."""
    if num_labels == 1:
        return None
    for index, label in id2label.items():
        if str(label).lower() in POSITIVE_LABELS:
            return int(index)
    return num_labels - 1
