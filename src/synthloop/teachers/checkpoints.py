"""Which model folder a `transformers` (or `student`) teacher loads, and why a folder cannot be one.

`builtin:classroom-teacher` names the small teacher shipped inside the package (synthloop/teachers/
classroom/model, trained by `python -m synthloop.teachers.classroom.train`). A local folder is checked
before anything loads it: it must exist, hold a causal LM whose weights fit its config (safetensors
headers are read, never the weights), and have a chat template, since a teacher is sent conversations.
A name that is not a local path is a Hub id looked up in the local cache only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthloop.config import error_line

MAX_TEMPLATE_BYTES = 1 << 20
BUILTIN = {"classroom-teacher": Path(__file__).parent / "classroom" / "model"}
PREFIX = "builtin:"


def resolve_model(model: str) -> str:
    """The folder or Hub id to load for a recipe's `teacher.model`."""
    if model.startswith(PREFIX):
        name = model[len(PREFIX) :]
        if name not in BUILTIN:
            raise ValueError(f"unknown built-in model {model!r}; the built-in models are: {builtin_names()}")
        return str(BUILTIN[name])
    return model


def builtin_names() -> str:
    return ", ".join(PREFIX + name for name in BUILTIN)


def looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or Path(model).expanduser().exists() or model.count("/") > 1


def chat_template_problem(folder: Path) -> str | None:
    """Why `folder`'s tokenizer has no usable chat template (none, not text, or not compiling), or None."""
    import json

    template = None
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        if jinja.stat().st_size > MAX_TEMPLATE_BYTES:
            return (
                f"{folder}: its chat_template.jinja is {jinja.stat().st_size:,} bytes; a chat template is at most 1 MiB"
            )
        template = jinja.read_text(encoding="utf-8", errors="replace")
    else:
        for name in ("chat_template.json", "tokenizer_config.json"):
            try:
                config = json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(config, dict) and config.get("chat_template") is not None:
                template = config["chat_template"]
                break
    if template is None or template == "":
        return (
            f"{folder} has no chat template, and a teacher is sent conversations (system and user turns): use an "
            "instruct or chat checkpoint, or add a chat_template to its tokenizer_config.json"
        )
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        template = next(
            (t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), None
        )
    if not isinstance(template, str):
        return f"{folder}: its chat template is not text; it must be a Jinja template string"
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        ImmutableSandboxedEnvironment().from_string(template)  # compiles: unknown filters fail here too
    except Exception as err:
        return f"{folder}: its chat template does not compile ({error_line(err)})"
    return None


def rendered_template_problem(folder: str, tokenizer: Any) -> str | None:
    """Why the tokenizer's chat template cannot render a system and a user turn, or None."""
    turns = [{"role": "system", "content": "Solve it."}, {"role": "user", "content": "What is 1 + 1?"}]
    try:
        prompt = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
    except Exception as err:
        return (
            f"{folder}: its chat template fails on a system and a user turn ({type(err).__name__}: {error_line(err)})"
        )
    if not isinstance(prompt, str) or not prompt.strip():
        return f"{folder}: its chat template renders an empty prompt for a system and a user turn"
    return None


def teacher_checkpoint_problem(model: str) -> str | None:
    """Why the local folder `model` cannot be loaded as a teacher, or None (also None for a Hub id)."""
    from synthloop.training.checkpoint import has_checkpoint
    from synthloop.training.command import checkpoint_problem

    if not looks_like_path(model):
        return None
    folder = Path(model).expanduser()
    if not folder.exists():
        return f"{model} does not exist"
    if not folder.is_dir():
        return f"{model} is a file; give the folder that save_pretrained wrote (config.json, weights, tokenizer)"
    if not has_checkpoint(folder):
        return f"{model} holds no Hugging Face checkpoint (config.json and model.safetensors or pytorch_model.bin)"
    problem = checkpoint_problem(folder)
    if problem:
        return problem.removeprefix("its ")
    return chat_template_problem(folder)
