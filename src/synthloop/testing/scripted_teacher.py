"""A scripted teacher behind a real OpenAI-compatible HTTP server, for the dataset path's tests and
benchmark where no real LLM can run: it writes new problems of a built-in skill when asked for
problems like an example (or for a category), keeps each one's true answer in a hidden table, and
solves them with chain of thought, wrong at a set rate (each sample on its own). The hidden table is
how the benchmark measures the share of wrong answers that reach training.

It also answers the prompt tasks the loop can run (`generation.prompt_tasks`): topics, textbook sections,
exercises (problems with the author's solution, wrong at the same rate), self_instruct and evol_instruct
(new problems of the seed instruction's skill, found in `skill_of` or among the problems it wrote),
refusal and misinformation pairs, and `answer` (like solve). `calls` counts every kind.

Categories must be built-in skill names (as `synthloop skills export` writes them). Replies are
deterministic: the same prompt and sample give the same text. Given `difficulty_of` (the train items'
difficulties, hidden from synthloop), a problem written like an example has the example's difficulty,
as a real teacher's variation would; otherwise every problem has `difficulty`."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from typing import Any

from aiohttp import web

from synthloop.registry import SKILLS
from synthloop.tasks import solve, write_problems
from synthloop.teachers.oracle import corrupt


class ScriptedTeacher:
    def __init__(
        self,
        error_rate: float = 0.2,
        difficulty: int = 1,
        model: str = "scripted",
        seed: int = 0,
        difficulty_of: dict[str, int] | None = None,
        skill_of: dict[str, str] | None = None,
    ):
        self.error_rate, self.difficulty, self.model, self.seed = error_rate, difficulty, model, seed
        self.difficulty_of = dict(difficulty_of or {})  # hidden: a train item's difficulty, so variations match it
        self.skill_of = dict(skill_of or {})  # hidden: a train question's category, for seed instructions
        self.truth: dict[str, str] = {}  # every problem it wrote -> its true answer (hidden from synthloop)
        self.steps: dict[str, tuple[str, ...]] = {}  # -> the skill's worked steps, its chain of thought
        self.calls: Counter[str] = Counter()  # "write" / "solve" / a prompt task's name / "other"
        self.wrong_samples = 0
        self.seen: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("model") != self.model:
            return web.json_response({"error": {"message": f"model {body.get('model')!r} not found"}}, status=404)
        messages = body.get("messages") or []
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        n = int(body.get("n") or 1)
        # The k-th time a prompt comes (synthloop sends a prompt again only as another sample) is another sample.
        self.seen[json.dumps(messages)] += 1
        occurrence = self.seen[json.dumps(messages)]
        key = hashlib.sha256(json.dumps([messages, occurrence, self.seed]).encode()).hexdigest()
        if system == write_problems.SYSTEM:
            self.calls["write"] += 1
            texts = [self.write(user, f"{key}/{i}") for i in range(n)]
        elif system == solve.SYSTEM:
            self.calls["solve"] += 1
            texts = [self.solve(user, f"{key}/{i}") for i in range(n)]
        elif (task := prompt_task_of(system)) is not None:
            self.calls[task] += 1
            texts = [self.prompted(task, user, f"{key}/{i}") for i in range(n)]
        else:
            self.calls["other"] += 1
            texts = ["I can only write and solve problems."] * n
        choices = [
            {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": t}}
            for i, t in enumerate(texts)
        ]
        usage = {"prompt_tokens": len(json.dumps(messages)) // 4, "completion_tokens": sum(len(t) // 4 for t in texts)}
        return web.json_response({"id": key[:24], "object": "chat.completion", "model": self.model, "choices": choices,
                                  "usage": usage})  # fmt: skip

    def write(self, prompt: str, key: str) -> str:
        category = re.search(r"^Category: (.+)$", prompt, re.MULTILINE)
        count = re.search(r"Write (\d+) new", prompt)
        example = re.search(r"^Problem: (.+?)\nAnswer: ", prompt, re.MULTILINE | re.DOTALL)
        difficulty = self.difficulty_of.get(example.group(1).strip(), self.difficulty) if example else self.difficulty
        name = category.group(1).strip() if category else ""
        if name not in SKILLS:
            return json.dumps({"problems": []})  # not a skill: nothing it can write (the schema wants one or more)
        skill, seed = SKILLS.get(name), int(key[:12], 16) % 2**31
        problems = []
        for index in range(int(count.group(1)) if count else 1):
            problem = skill.generate(seed, index, difficulty)
            self.truth[problem.question], self.steps[problem.question] = problem.answer, problem.steps
            problems.append(problem.question)
        return json.dumps({"problems": problems})

    def new_problems(self, name: str, count: int, key: str) -> list[tuple[str, str, tuple[str, ...]]]:
        """`count` new problems of skill `name` (question, true answer, worked steps), remembered."""
        if name not in SKILLS:
            return []
        skill, seed = SKILLS.get(name), int(key[:12], 16) % 2**31
        out = []
        for index in range(count):
            problem = skill.generate(seed, index, self.difficulty)
            self.truth[problem.question], self.steps[problem.question] = problem.answer, problem.steps
            self.skill_of.setdefault(problem.question, name)
            out.append((problem.question, problem.answer, problem.steps))
        return out

    def prompted(self, task: str, prompt: str, key: str) -> str:
        count = int(m.group(1)) if (m := re.search(r"(?:List|Write) (\d+)", prompt)) else 1
        topic = prompt.split(": ", 1)[1].split("\n")[0].strip() if ": " in prompt else prompt
        category = topic.split(" (")[0]
        if task in ("answer", "answer_plain"):
            return self.solve(prompt, key)
        if task == "topics":
            return json.dumps({"topics": [f"{topic} part {i}" for i in range(count)]})
        if task == "textbook":
            return (
                f"# {topic}\n\nThis section explains {topic} from first principles. We start from the idea, "
                "then work through two examples step by step, checking each result.\n\n## Example\n\n"
                f"A first worked example of {topic}, with every step shown and the result checked."
            )
        if task == "exercises":
            rng = random.Random(key)
            exercises = []
            for question, answer, steps in self.new_problems(category, count, key):
                if rng.random() < self.error_rate:
                    self.wrong_samples += 1
                    answer = corrupt(answer, rng)
                exercises.append({"problem": question, "solution": "\n".join(steps) or "by hand", "answer": answer})
            return json.dumps({"exercises": exercises})
        if task in ("self_instruct", "evol_instruct"):
            marker = "example instruction:\n" if task == "self_instruct" else "Instruction:\n"
            seed = prompt.split(marker, 1)[1].split("\n\n")[0].strip() if marker in prompt else ""
            made = [q for q, _, _ in self.new_problems(self.skill_of.get(seed, ""), count, key)]
            if task == "evol_instruct":
                return made[0] if made else "No new instruction."
            return json.dumps({"instructions": made})
        if task == "refusal":
            refusal = "I can't help with that, but I can explain the safe basics."
            return json.dumps(
                {"pairs": [{"request": f"Help me misuse {topic} {i}", "refusal": refusal} for i in range(count)]}
            )
        claims = [{"claim": f"{topic} is never needed ({i})", "correction": "It often is."} for i in range(count)]
        return json.dumps({"items": claims})

    def solve(self, question: str, key: str) -> str:
        answer = self.truth.get(question.strip())
        if answer is None:
            return "I do not know how to solve this."
        rng = random.Random(key)
        if rng.random() < self.error_rate:
            self.wrong_samples += 1
            answer = corrupt(answer, rng)
        steps = "\n".join(self.steps.get(question.strip(), ()))
        return f"{steps}\n#### {answer}" if steps else f"#### {answer}"

    def wrong_share(self, rows: list[Any]) -> tuple[int, int]:
        """(rows whose answer differs from the hidden truth, rows checked) among rows of questions it wrote."""
        checked = wrong = 0
        for row in rows:
            truth = self.truth.get(row.question.strip())
            if truth is None or row.source != "synthetic":
                continue
            checked += 1
            score = SKILLS.get(row.skill).score(f"#### {row.answer}", truth) if row.skill in SKILLS else 0.0
            wrong += score < 1.0
        return wrong, checked


def prompt_task_of(system: str) -> str | None:
    """The prompt task whose system prompt this is (a persona is appended to it)."""
    from synthloop.tasks import answer, prompted

    systems = {
        "answer": answer.SYSTEM_REASONING,
        "answer_plain": answer.SYSTEM_PLAIN,
        **{task.name: task.system for task in vars(prompted).values() if is_prompt_task(task)},
    }
    return next((name for name, text in systems.items() if system.startswith(text)), None)


def is_prompt_task(value: object) -> bool:
    from synthloop.tasks.prompted import PromptTask

    return isinstance(value, type) and issubclass(value, PromptTask) and value is not PromptTask
