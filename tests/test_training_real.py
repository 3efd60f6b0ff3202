"""train_round and answer on a real (tiny) Hugging Face student: a Llama built from a config with the
project's tokenizer and a chat template, saved to a folder and used as `student.base`, as a Hub model
would be. Chat-template training and evaluation, LoRA, the TRL and command trainers, the preflight's
refusals, and a round killed mid-way resuming to the same weights."""

import json
import os
import shlex
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from synthloop.config import RecipeError, validate_recipe
from synthloop.records import Record
from synthloop.registry import SKILLS
from synthloop.training import checkpoint as ckpt
from synthloop.training import student
from synthloop.training.command import TrainerFailed
from synthloop.training.format import prompt_ids
from synthloop.training.lora import merge_adapters
from synthloop.training.packing import IGNORE, encode_rows
from synthloop.training.preflight import check_student
from synthloop.training.tiny import build_tiny_student


def problems(n, seed=0):
    return [SKILLS.get("comparison").generate(seed, i, 1) for i in range(n)]


def records(n, seed=0):
    return [
        Record(kind="solution", skill="comparison", question=p.question, source="synthetic", round=1,
               reasoning="\n".join(p.steps), answer=p.answer)
        for p in problems(n, seed)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    texts = [f"{p.question}\n{chr(10).join(p.steps)}\n#### {p.answer}" for p in problems(200)]
    return build_tiny_student(tmp_path_factory.mktemp("base") / "tiny", texts)


def recipe(base, steps=20, **student):
    train = {"steps_per_round": steps, "batch_size": 8, "learning_rate": 3e-3, "warmup_steps": 2}
    train.update(student.pop("train", {}))
    return validate_recipe(
        {
            "name": "t",
            "skills": {"comparison": {"difficulty": 1}},
            "student": {"base": str(base), "train": train, **student},
            "evaluation": {"max_new_tokens": 12, "batch_size": 4},
        }
    )


def run(r, tmp_path, rows=None, previous=None, name="out", **kw):
    rows = rows or records(64)
    return student.train_round(r, rows, previous, tmp_path / "tok", tmp_path / f"{name}-work", tmp_path / name, 3, **kw)


def test_chat_template_training_and_evaluation_share_the_rendering(base, tmp_path, monkeypatch):
    r = recipe(base, steps=3)
    stats = run(r, tmp_path)
    assert stats["format"] == "chat_template" and stats["trainer"] == "builtin" and stats["dtype"] == "float32"
    tokenizer = ckpt.load_tokenizer(tmp_path / "out")
    rows = records(3)
    seen = {}

    def fake_generate(model, tok, prompts, max_new_tokens, batch_size):
        seen["prompts"] = prompts
        return ["" for _ in prompts]

    monkeypatch.setattr(student, "generate_ids", fake_generate)
    student.answer(tmp_path / "out", [row.question for row in rows], r)
    trained = encode_rows(tokenizer, "chat_template", [(x.question, x.reasoning, x.answer) for x in rows], 256)
    for prompt, (ids, labels) in zip(seen["prompts"], trained, strict=True):
        start = next(i for i, t in enumerate(labels) if t != IGNORE)
        assert ids[:start] == prompt  # asked in exactly the tokens it was trained to continue
    first = tokenizer.decode(seen["prompts"][0])
    assert first == f"<s>user\n{rows[0].question}</s>\n<s>assistant\n"
    ids, labels = trained[0]
    completion = tokenizer.decode([t for t in labels if t != IGNORE])
    assert completion == f"{rows[0].reasoning}\n#### {rows[0].answer}</s>\n"  # the assistant turn alone


def test_a_round_saves_a_checkpoint_stats_and_answers(base, tmp_path):
    r = recipe(base, steps=30)
    stats = run(r, tmp_path)
    assert {"steps", "tokens", "seconds", "tokens_per_second", "first_loss", "final_loss", "trainer", "device",
            "dtype", "format", "lora"} <= set(stats)  # fmt: skip
    assert stats["final_loss"] < stats["first_loss"] and stats["lora"] is None and stats["device"] == "cpu"
    assert json.loads((tmp_path / "out" / "train_stats.json").read_text()) == stats
    assert ckpt.has_checkpoint(tmp_path / "out") and not (tmp_path / "out-work").exists()
    outputs = student.answer(tmp_path / "out", [p.question for p in problems(5, seed=9)], r)
    assert len(outputs) == 5 and all(isinstance(o, str) for o in outputs)


@pytest.mark.parametrize("lora", [None, {"r": 4, "target_modules": ["q_proj", "v_proj"]}])
def test_a_scratch_student_trains_in_the_plain_format(tmp_path, lora):
    """With LoRA, the scratch base is rebuilt from the run's tokenizer and seed: round 2 finds the same base."""
    from synthloop.training.tokenizer import train_tokenizer

    r = validate_recipe(
        {
            "name": "t",
            "skills": {"comparison": {"difficulty": 1}},
            "student": {"architecture": {"family": "llama", "hidden_size": 32, "layers": 1, "heads": 2,
                                         "intermediate_size": 64}, "train": {"steps_per_round": 5, "batch_size": 8},
                        "lora": lora},
            "evaluation": {"max_new_tokens": 8},
        }
    )  # fmt: skip
    assert check_student(r).parameters > 0
    train_tokenizer([p.question for p in problems(50)], 300).save_pretrained(tmp_path / "tok")
    stats = run(r, tmp_path)
    assert stats["format"] == "plain" and student.student_format(r) == "plain"
    assert (stats["lora"] is None) == (lora is None)
    second = run(r, tmp_path, previous=tmp_path / "out", name="out2")
    assert second["first_loss"] < stats["first_loss"]  # round 2 continues round 1's student
    assert len(student.answer(tmp_path / "out2", ["Which is larger: 3 or 5?"], r)) == 1


def test_lora_targets_of_a_scratch_student_are_checked_too():
    lora = {"target_modules": ["q_proj"]}
    r = validate_recipe({"name": "t", "skills": {"comparison": {}}, "student": {"lora": lora}})
    with pytest.raises(RecipeError, match="its linear layers are c_attn, c_fc, c_proj"):
        check_student(r)  # the default scratch student is a GPT-2


def logits(model, tokenizer, question):
    ids = torch.tensor([prompt_ids(tokenizer, "chat_template", question)])
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_lora_adapters_are_saved_continued_and_merged(base, tmp_path):
    r = recipe(base, steps=20, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"], "merge": True})
    stats = run(r, tmp_path)
    out = tmp_path / "out"
    assert stats["lora"]["r"] == 4 and 0 < stats["trainable_parameters"] < 5_000
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    assert ckpt.has_checkpoint(out / "merged")
    question = problems(1, seed=5)[0].question
    tokenizer = ckpt.load_tokenizer(out)
    merged, _ = ckpt.eval_student(out, r, torch.device("cpu"), torch.float32)
    reloaded = ckpt.trainable_student(r, out, tmp_path / "tok", torch.device("cpu"), torch.float32)[0].eval()
    torch.testing.assert_close(logits(merged, tokenizer, question), logits(reloaded, tokenizer, question))
    # The merge the CLI offers, from the adapters alone, gives the same model and the same answers.
    merge_adapters(out, tmp_path / "merged-again", base=str(base))
    again = ckpt.load_weights(tmp_path / "merged-again", torch.float32)
    torch.testing.assert_close(logits(again, tokenizer, question), logits(merged, tokenizer, question))
    questions = [p.question for p in problems(4, seed=6)]
    adapters_only = tmp_path / "adapters-only"
    adapters_only.mkdir()
    for f in out.iterdir():
        if f.is_file():
            (adapters_only / f.name).write_bytes(f.read_bytes())
    assert student.answer(adapters_only, questions, r) == student.answer(out, questions, r)
    # Round 2 starts from round 1's adapters (the same ones, trainable) and saves adapters again.
    saved = load_file(out / "adapter_model.safetensors")
    trainable = {n: p for n, p in reloaded.named_parameters() if "lora_" in n}
    assert len(trainable) == len(saved) and all(
        any(torch.equal(p, v) for v in saved.values()) for p in trainable.values()
    )
    run(r, tmp_path, previous=out, name="out2")
    second = load_file(tmp_path / "out2" / "adapter_model.safetensors")
    assert second.keys() == saved.keys() and any(not torch.equal(second[k], saved[k]) for k in saved)


def test_lora_target_modules_not_in_the_model_are_listed(base):
    with pytest.raises(RecipeError) as err:
        check_student(recipe(base, lora={"target_modules": ["q_proj", "query_key_value"]}))
    message = str(err.value)
    assert "query_key_value not in this model" in message and "\n" not in message
    assert "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj" in message
    assert check_student(recipe(base, lora={"target_modules": ["q_proj", "o_proj"]})).parameters > 0


def test_a_student_that_is_not_a_causal_lm_is_refused(base, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    folder = tmp_path / "bert"
    tokenizer = ckpt.load_tokenizer(base)
    BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64)).save_pretrained(folder)  # fmt: skip
    tokenizer.save_pretrained(folder)
    with pytest.raises(RecipeError, match="BertForMaskedLM, not a causal language model"):
        check_student(recipe(folder))


def test_unusable_trainers_are_refused(base, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else find_spec(name, *a))
    with pytest.raises(RecipeError, match=r"pip install 'synthloop\[trl\]'"):
        check_student(recipe(base, trainer="trl"))
    with pytest.raises(RecipeError, match="'no-such-trainer-xyz' is not on PATH"):
        check_student(recipe(base, trainer="command", command="no-such-trainer-xyz --data {data} --out {out}"))
    check_student(recipe(base, trainer="command", command="env A=1 sh -c 'exit 0' {data} {out}"))


@pytest.mark.slow
def test_the_trl_trainer_learns_on_the_same_rows(base, tmp_path):
    r = recipe(base, steps=40, trainer="trl", train={"grad_accumulation": 2, "batch_size": 4})
    stats = run(r, tmp_path)
    assert stats["trainer"] == "trl" and stats["format"] == "chat_template"
    assert stats["final_loss"] < stats["first_loss"] * 0.8 and stats["tokens"] > 0
    assert ckpt.has_checkpoint(tmp_path / "out") and not (tmp_path / "out-work").exists()
    assert len(student.answer(tmp_path / "out", ["Which is larger: 3 or 5?"], r)) == 1


TRAINER = """
import argparse, json
from transformers import AutoModelForCausalLM
parser = argparse.ArgumentParser()
parser.add_argument("--data"); parser.add_argument("--base"); parser.add_argument("--out")
args = parser.parse_args()
rows = [json.loads(line) for line in open(args.data)]
assert all([m["role"] for m in row["messages"]] == ["user", "assistant"] for row in rows)
print(f"trained on {len(rows)} conversations", flush=True)
AutoModelForCausalLM.from_pretrained(args.base).save_pretrained(args.out)
"""


def test_the_command_trainer_gets_chat_jsonl_and_must_leave_a_checkpoint(base, tmp_path):
    script = tmp_path / "my trainer.py"  # a space: the paths are shell-quoted
    script.write_text(TRAINER)
    command = f"{sys.executable} '{script}' --data {{data}} --base {{base}} --out {{out}}"
    lines = []
    stats = run(recipe(base, trainer="command", command=command), tmp_path, log=lines.append)
    assert "trainer: trained on 64 conversations" in lines and stats["trainer"] == "command"
    assert stats["format"] == "chat_template" and stats["rows"] == 64
    assert ckpt.has_checkpoint(tmp_path / "out") and (tmp_path / "out" / "tokenizer_config.json").is_file()


SAVE_BERT = """
import sys
from transformers import BertConfig, BertForMaskedLM
config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
BertForMaskedLM(config).save_pretrained(sys.argv[1])
"""
SAVE_WIDER = """
import shutil, sys
from transformers import AutoConfig, AutoModelForCausalLM
config = AutoConfig.from_pretrained(sys.argv[1])
config.intermediate_size *= 2
AutoModelForCausalLM.from_config(config).save_pretrained(sys.argv[2])
shutil.copy(sys.argv[1] + "/config.json", sys.argv[2] + "/config.json")  # weights that are not the config's
"""


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("sh -c 'echo starting; echo out of memory >&2; exit 3' {data} {out}", "exited with status 3 (out of memory)"),
        ("true {data} {out}", "left no Hugging Face checkpoint (config.json and weights)"),
        (  # garbage weights beside a real config
            """sh -c 'mkdir -p "$2"; cp "$1/config.json" "$2/"; head -c 1000 /dev/urandom > "$2/model.safetensors"'"""
            " x {base} {out} {data}",
            "its weights in",
        ),
        (  # a file cut short
            """sh -c 'mkdir -p "$2"; cp "$1/config.json" "$2/"; head -c 5000 "$1/model.safetensors" >"""
            """ "$2/model.safetensors"' x {base} {out} {data}""",
            "cannot be read",
        ),
        (
            f"{sys.executable} -c {shlex.quote(SAVE_BERT)} {{out}} {{data}}",
            "is a BertForMaskedLM, not a causal language model",
        ),
        (f"{sys.executable} -c {shlex.quote(SAVE_WIDER)} {{base}} {{out}} {{data}}", "do not fit its config.json"),
    ],
)
def test_a_failing_command_trainer_stops_the_round_with_one_line(base, tmp_path, command, expected):
    with pytest.raises(TrainerFailed) as err:
        run(recipe(base, trainer="command", command=command), tmp_path, log=lambda line: None)
    message = str(err.value)
    assert expected in message and "--resume" in message and "nothing is lost" in message and "\n" not in message
    assert (tmp_path / "out-work" / "data.jsonl").is_file()  # the round's data is kept for the retry


KILLER = """
import json, os, signal, sys
from pathlib import Path
import torch
from transformers import Trainer
from synthloop.config import validate_recipe
from synthloop.records import Record
from synthloop.training import resume, student

spec = json.loads(Path(sys.argv[1]).read_text())
torch.set_num_threads(spec["threads"])
owner, name = (Trainer, "_save_checkpoint") if spec["recipe"]["student"]["trainer"] == "trl" else (
    resume.FolderCheckpoints, "save")
save = getattr(owner, name)
saves = []

def save_then_die(*args, **kwargs):
    save(*args, **kwargs)
    saves.append(1)
    if len(saves) == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-round, right after its second checkpoint

setattr(owner, name, save_then_die)
rows = [Record(**row) for row in spec["rows"]]
student.train_round(validate_recipe(spec["recipe"]), rows, None, Path(spec["tok"]), Path(spec["work"]),
                    Path(spec["out"]), 3)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("trainer", "lora"), [("builtin", None), ("builtin", {"r": 4, "dropout": 0.1}), ("trl", None)])
def test_a_round_killed_mid_way_resumes_to_the_same_weights(base, tmp_path, trainer, lora):
    r = recipe(base, steps=16, trainer=trainer, train={"checkpoint_every": 5}, **({"lora": lora} if lora else {}))
    rows = records(48)
    weights = "adapter_model.safetensors" if lora else "model.safetensors"
    expected = run(r, tmp_path, rows=rows, name="whole")
    spec = {
        "recipe": r.model_dump(mode="json"),
        "rows": [{k: getattr(x, k) for k in ("kind", "skill", "question", "source", "round", "reasoning", "answer")}
                 for x in rows],
        "tok": str(tmp_path / "tok"), "work": str(tmp_path / "out-work"), "out": str(tmp_path / "out"),
        "threads": torch.get_num_threads(),
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLER), str(tmp_path / "spec.json")],
                            capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    state = "trl/checkpoint-10" if trainer == "trl" else "train_state.pt"
    assert (tmp_path / "out-work" / state).exists() and not (tmp_path / "out" / weights).exists()
    stats = run(r, tmp_path, rows=rows)
    assert stats["resumed_at_step"] == 10 and expected["resumed_at_step"] == 0
    assert (stats["first_loss"], stats["final_loss"], stats["tokens"]) == (
        expected["first_loss"], expected["final_loss"], expected["tokens"])  # fmt: skip
    whole, resumed = load_file(tmp_path / "whole" / weights), load_file(tmp_path / "out" / weights)
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_a_mid_round_state_made_from_other_rows_is_not_resumed(base, tmp_path):
    r = recipe(base, steps=6, train={"checkpoint_every": 2})
    from synthloop.training.resume import FolderCheckpoints, round_digest

    stale = FolderCheckpoints(tmp_path / "out-work", round_digest(r, records(10, seed=1), None, 3))
    stale.save({"step": 4})  # a state from other rows: ignored, the round starts over
    assert run(r, tmp_path, rows=records(10))["resumed_at_step"] == 0


def test_the_memory_estimate_counts_lora_bf16_and_checkpointing(base):
    from synthloop.training.preflight import student_needs

    def need(**keys):
        return student_needs(recipe(base, **keys)).train_bytes

    full, lora = need(), need(lora={"r": 4})
    assert lora < full and need(lora={"r": 4}, dtype="bfloat16") < lora
    assert need(train={"gradient_checkpointing": True}) < full < need(train={"batch_size": 32})
