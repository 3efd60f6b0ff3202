"""The curation stages a recipe asks for, built in their fixed order, and the counts they keep.

Order: verify, code tests, self-consistency, PII, quality, decontamination, exact / near / semantic
dedup, reward model, judge. Cheap checks come first and model calls last, so the costly stages only
see rows that survived the rest (a stage never looks at a row another stage rejected)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from synthloop.config import CurationConfig
from synthloop.curation.base import Stage, run_stages
from synthloop.curation.decontaminate import Decontaminate, load_eval_set
from synthloop.curation.dedup import ExactDedup
from synthloop.curation.judge import LLMJudge, PairwiseJudge, judge_unavailable
from synthloop.curation.near_dedup import NearDedup
from synthloop.curation.pii import RedactPII
from synthloop.curation.quality import QualityFilter
from synthloop.curation.sandbox import SandboxLimits, isolation_notice, require_isolation
from synthloop.curation.self_consistency import SelfConsistency
from synthloop.curation.text import record_text
from synthloop.curation.verify import VerifyAnswers
from synthloop.curation.verify_code import VerifyCode
from synthloop.records import Record
from synthloop.storage.input_files import InputFileError
from synthloop.storage.response_cache import ResponseCache
from synthloop.storage.shards import ShardWriter, mark_complete, reset
from synthloop.storage.spill import clear_scratch
from synthloop.teachers.base import Teacher, TeacherUnavailable

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def no_rows() -> Iterable[Record]:
    return ()


@dataclass
class Context:
    """What the stages need besides their settings: held-out probe questions (always decontaminated
    against), rows kept earlier (deduplicated against: each dedup stage reads them once, as a stream),
    where judge calls are cached, the judge, and where stages keep scratch files."""

    probes: list[str] = field(default_factory=list)
    earlier: Callable[[], Iterable[Record]] = no_rows
    cache: ResponseCache | None = None
    run_id: str = ""
    judge: Teacher | None = None  # the judge's teacher when already built (see `preflight`)
    scratch: Path | None = None  # the run's folder; the system's temporary folder when None


def build_stages(cfg: CurationConfig, context: Context) -> list[Stage]:
    stages: list[Stage] = []
    if cfg.verify:
        stages.append(VerifyAnswers(cfg.verify.on_abstain))
    if cfg.code:
        c = cfg.code
        limits = SandboxLimits(wall_s=c.timeout_s, cpu_s=c.cpu_s, memory_mb=c.memory_mb)
        stages.append(VerifyCode(limits, c.workers, c.isolation))
    if cfg.self_consistency:
        stages.append(SelfConsistency(cfg.self_consistency.min_agreement))
        stages[-1].scratch_root = context.scratch
    if cfg.pii:
        stages.append(RedactPII(drop=cfg.pii.action == "drop"))
    if cfg.quality:
        q = cfg.quality
        stages.append(QualityFilter(q.preset, q.rules, q.field, q.repetition_min_words))
    if cfg.decontaminate:
        d = cfg.decontaminate
        eval_sets: dict[str, list[str]] = {"probes": context.probes} if context.probes else {}
        eval_sets.update({Path(path).name: load_eval_set(path) for path in d.eval_sets})
        stages.append(Decontaminate(eval_sets, d.n, d.field, d.min_coverage))
    if cfg.dedup:
        stages += dedup_stages(cfg, context)
    if cfg.reward_model:
        from synthloop.curation.reward import RewardModel  # loads torch and transformers: only when asked

        r = cfg.reward_model
        stages.append(RewardModel(r.path, r.threshold, r.batch_size, r.max_length, r.device))
    if cfg.judge:
        stages.append(judge_stage(cfg, context))
        if isinstance(stages[-1], PairwiseJudge):
            stages[-1].scratch_root = context.scratch
    return stages


def curation_warnings(cfg: CurationConfig) -> list[str]:
    """What every run's manifest, report and summary must say about its curation (a weaker sandbox)."""
    notice = isolation_notice(cfg.code.isolation) if cfg.code else None
    return [notice] if notice else []


def preflight(cfg: CurationConfig) -> Teacher | None:
    """Fail before a run generates anything (and pays for it) if a stage could not be built later: a
    code sandbox whose isolation does not work here, an eval set that cannot be read, a reward model
    folder without a model, a missing extra, a judge that cannot be reached. Returns the judge's
    teacher, checked, so that every round reuses it (a local judge model is loaded once)."""
    from synthloop.teachers.factory import check_teacher, make_teacher

    if cfg.code:
        require_isolation(cfg.code.isolation)
    if cfg.decontaminate:
        for path in cfg.decontaminate.eval_sets:
            load_eval_set(path)
    if cfg.reward_model:
        from synthloop.curation.reward import RewardModelError, check_model_folder

        try:
            check_model_folder(cfg.reward_model.path)
        except RewardModelError as err:
            raise RewardModelError(f"curation.reward_model.path {err}") from None
    if cfg.dedup and cfg.dedup.semantic:
        from synthloop.curation.semantic_dedup import embedding_package

        try:
            embedding_package()
        except ImportError as err:
            raise InputFileError(f"curation.dedup.semantic: {err}") from None
    if not cfg.judge:
        return None
    try:
        judge = make_teacher(cfg.judge.teacher)
        check_teacher(judge)
    except TeacherUnavailable as err:
        raise TeacherUnavailable(judge_unavailable(str(err))) from None
    return judge


def dedup_stages(cfg: CurationConfig, context: Context) -> list[Stage]:
    d = cfg.dedup
    assert d is not None
    stages: list[Stage] = []
    if d.exact:
        stages.append(ExactDedup(((r.question, r.id) for r in context.earlier()), context.scratch))
    if d.near:
        n = d.near
        earlier_texts = ((r.id, record_text(r, n.field)) for r in context.earlier())
        stages.append(NearDedup(n.threshold, n.ngram, n.num_perm, n.field, earlier_texts, scratch_root=context.scratch))
    if d.semantic:
        from synthloop.curation.semantic_dedup import SemanticDedup  # needs the 'semantic' extra

        s = d.semantic
        earlier_texts = ((r.id, record_text(r, s.field)) for r in context.earlier())
        stages.append(SemanticDedup(s.threshold, s.field, earlier=earlier_texts))
    return stages


def judge_stage(cfg: CurationConfig, context: Context) -> Stage:
    from synthloop.teachers.engine import Engine
    from synthloop.teachers.factory import check_teacher, engine_settings, make_teacher

    j = cfg.judge
    assert j is not None
    teacher = context.judge
    if teacher is None:
        teacher = make_teacher(j.teacher)
        check_teacher(teacher)  # an unreachable judge fails here, before any row is curated
    engine = Engine(teacher, engine_settings(j.teacher), context.cache, f"{context.run_id}/judge")
    if j.mode == "pairwise":
        return PairwiseJudge(engine, j.rubric, j.max_tokens)
    return LLMJudge(engine, j.rubric, j.threshold, j.on_unparsed, j.max_tokens)


def stage_counts(stages: list[Stage]) -> dict[str, Any]:
    """What stages count beyond verdicts: PII found per kind, rows breaking each quality rule, and how
    often a pairwise judge's two orders agreed."""
    out: dict[str, Any] = {}
    for stage in stages:
        if isinstance(stage, RedactPII):
            out["pii"] = dict(sorted(stage.counts.items()))
        elif isinstance(stage, QualityFilter):
            out["quality_rules"] = dict(stage.counts.most_common())
        elif isinstance(stage, PairwiseJudge):
            out["pairwise"] = {"pairs": stage.pairs, "orders_agreed": stage.orders_agreed}
    # rows a verifier could not judge (kept or rejected as the recipe says): never unseen
    out["abstained"] = {stage.name: stage.abstained for stage in stages if hasattr(stage, "abstained")}
    return out


TEACHER_MISTAKES = ("wrong_answer", "parse_error")  # the teacher's own errors, as verification found them


class Tally:
    """What curation counts as the rows stream past: rows, kept rows per category, rejected rows per
    reason (the first rejecting stage's), and the teacher's own mistakes (a wrong or missing final
    answer) per category and reason with the first few of each category as examples."""

    def __init__(self, categories: Iterable[str] = (), examples: int = 3):
        self.rows = self.kept = 0
        self.kept_per_category = dict.fromkeys(categories, 0)
        self.rejected: dict[str, int] = {}
        self.mistakes: dict[str, dict[str, int]] = {}
        self.mistake_examples: dict[str, list[dict[str, Any]]] = {}
        self.examples = examples

    def add_kept(self, skills: list[str]) -> None:
        """Kept rows counted by their categories alone (what a kept row adds)."""
        self.rows += len(skills)
        self.kept += len(skills)
        for skill in skills:
            self.kept_per_category[skill] = self.kept_per_category.get(skill, 0) + 1

    def add(self, row: Record) -> None:
        self.rows += 1
        if row.kept:
            self.kept += 1
            self.kept_per_category[row.skill] = self.kept_per_category.get(row.skill, 0) + 1
            return
        reason = row.reject_reason or "rejected"
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if reason not in TEACHER_MISTAKES:
            return
        per = self.mistakes.setdefault(row.skill, {})
        per[reason] = per.get(reason, 0) + 1
        shown = self.mistake_examples.setdefault(row.skill, [])
        if len(shown) < self.examples:
            wrote = row.answer if row.answer is not None else " ".join((row.raw_output or "").split())[-80:]
            shown.append(
                {
                    "question": row.question[:300],
                    "teacher": (wrote or "")[:120],
                    "reference": row.reference_answer,
                    "reason": reason,
                }
            )


class RowObserver(Protocol):
    """What sees the rows out of curation besides the `Tally` (the loop's counts per origin)."""

    def row(self, row: Record) -> None:
        """The next row out, in this process (rows come out in the order they went in)."""

    def table(self, rows: pa.Table, positions: np.ndarray, live: np.ndarray) -> None:
        """A batch of rows out on Ray, as Arrow, with their positions in the input and which were kept."""


def curate_stream(
    stages: list[Stage],
    rows: Iterable[Record],
    out: Path,
    shard_size: int,
    tally: Tally,
    observe: RowObserver | None = None,
) -> tuple[ShardWriter, ShardWriter]:
    """Run `rows` through `stages` into `out/curated` and `out/rejected`, shard by shard as they fill:
    memory is bounded by the shard size and the stages' batches, not by the number of rows. Every
    stage keeps its rows' order, so the n-th row out is the n-th row in. `observe` sees each row out."""
    kept, rejected = ShardWriter(out / "curated", shard_size), ShardWriter(out / "rejected", shard_size)
    for row in run_stages(stages, rows):
        tally.add(row)
        if observe is not None:
            observe.row(row)
        (kept if row.kept else rejected).append(row)
    kept.close()
    rejected.close()
    clear_scratch(out)  # the stages' scratch files: their state is not needed once the stream is through
    return kept, rejected


def engine_stages(engine: str, cfg: CurationConfig, context: Context) -> list[Stage]:
    """`build_stages` for an engine: on Ray the dedup steps read the earlier rows themselves, globally,
    so the driver's stages are built without them."""
    return build_stages(cfg, replace(context, earlier=no_rows) if engine == "ray" else context)


def curate_on(
    engine: str,
    cfg: CurationConfig,
    stages: list[Stage],
    context: Context,
    rows: Iterable[Record],
    out: Path,
    shard_size: int,
    tally: Tally,
    observe: RowObserver | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """`curate_stream` in this process, or on Ray Data (`engine="ray"`, Ray joined): the two writers and
    the stages' counts."""
    if engine == "ray":
        from synthloop.runners.ray_curate import curate_on_ray

        return curate_on_ray(cfg, stages, context, rows, out, shard_size, tally, observe)
    kept, rejected = curate_stream(stages, rows, out, shard_size, tally, observe)
    return kept, rejected, stage_counts(stages)


def curate_rows(
    cfg: CurationConfig,
    rows: Iterable[Record],
    out: Path,
    context: Context,
    shard_size: int = 1000,
    engine: str = "local",
) -> dict[str, Any]:
    """Curate `rows` (a stream) with `cfg` into `out/curated` and `out/rejected` (Parquet shards) and
    `out/summary.json`, in this process or (`engine="ray"`, Ray already joined) on Ray Data."""
    from synthloop.storage.atomic import write_json

    for name in ("curated", "rejected"):
        reset(out / name)
    clear_scratch(out)  # what a killed run left
    context = replace(context, scratch=context.scratch or out)
    stages = engine_stages(engine, cfg, context)
    start = time.perf_counter()
    tally = Tally()
    kept, rejected, counts = curate_on(engine, cfg, stages, context, rows, out, shard_size, tally)
    mark_complete(out / "curated", {"rows": kept.rows})
    mark_complete(out / "rejected", {"rows": rejected.rows})
    summary = {
        "rows": tally.rows,
        "kept": tally.kept,
        "rejected": tally.rejected,
        **counts,
        "stages": [stage.name for stage in stages],
        "seconds": round(time.perf_counter() - start, 3),
        "warnings": curation_warnings(cfg),
    }
    write_json(out / "summary.json", summary)
    return summary
