"""What a `command` trainer leaves in {out} is checked before the round commits it: a checkpoint any HF
tool would load passes (tied embeddings, GPT-2's names, shards, PyTorch files), and one that would load
with random weights, or not at all, is refused with the reason."""

import json
import zipfile

import pytest
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from synthloop.training.command import checkpoint_problem

LLAMA = {"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2}


def llama(layers: int = 2, tied: bool = False) -> LlamaForCausalLM:
    config = LlamaConfig(**LLAMA, num_hidden_layers=layers, num_key_value_heads=2, tie_word_embeddings=tied)
    return LlamaForCausalLM(config)


def gpt2() -> GPT2LMHeadModel:
    return GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64))


@pytest.mark.parametrize(
    "save",
    [
        lambda out: llama().save_pretrained(out),
        lambda out: llama(tied=True).save_pretrained(out),  # lm_head is the embedding, saved once
        lambda out: gpt2().save_pretrained(out),  # tied, Conv1D weights
        lambda out: llama().save_pretrained(out, max_shard_size="20KB"),  # shards and an index
        lambda out: llama().save_pretrained(out, safe_serialization=False),  # pytorch_model.bin
    ],
    ids=["llama", "tied", "gpt2", "sharded", "bin"],
)
def test_a_checkpoint_hf_tools_load_passes(tmp_path, save):
    save(tmp_path)
    assert checkpoint_problem(tmp_path) is None


def test_gpt2_weights_saved_without_their_prefix_pass(tmp_path):
    model = gpt2()
    model.config.save_pretrained(tmp_path)
    state = {
        k.removeprefix("transformer."): v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"
    }
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    assert checkpoint_problem(tmp_path) is None


def only_embeddings(out):
    model = llama()
    model.config.save_pretrained(out)
    embeddings = {"model.embed_tokens.weight": model.state_dict()["model.embed_tokens.weight"]}
    save_file(embeddings, out / "model.safetensors", metadata={"format": "pt"})


def fewer_layers(out):
    llama(layers=1).save_pretrained(out)
    llama(layers=2).config.save_pretrained(out)  # the config says 2 layers, the weights hold 1


def any_zip(out):
    llama().config.save_pretrained(out)
    with zipfile.ZipFile(out / "pytorch_model.bin", "w") as archive:
        archive.writestr("hello.txt", "not weights")


def shard_outside(out):
    llama().save_pretrained(out, max_shard_size="20KB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    index["weight_map"] = {k: "../elsewhere/model.safetensors" for k in index["weight_map"]}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))


def wider_vocab(out):
    llama().save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "vocab_size": 200}))


@pytest.mark.parametrize(
    ("save", "message"),
    [
        (only_embeddings, "lack 20 of the 21 parameters"),
        (fewer_layers, "lack 9 of the 21 parameters"),
        (any_zip, "cannot be read"),
        (shard_outside, "names a file outside the folder"),
        (wider_vocab, "model.embed_tokens.weight has shape (100, 32), not (200, 32)"),
    ],
    ids=["embeddings-only", "fewer-layers", "any-zip", "shard-outside", "wider-vocab"],
)
def test_a_checkpoint_that_would_load_random_or_not_at_all_is_refused(tmp_path, save, message):
    save(tmp_path)
    problem = checkpoint_problem(tmp_path)
    assert problem is not None and message in problem, problem


def test_legacy_pytorch_files_are_read_too(tmp_path):
    model = llama()
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    assert checkpoint_problem(tmp_path) is None
