"""The curation stages a recipe asks for, built in their fixed order, and the counts they keep.

Order: verify, code tests, self-consistency, PII, quality, decontamination, exact / near / semantic
dedup, reward model, judge. Cheap checks come first and model calls last, so the costly stages only
see rows that survived the rest (a stage never looks at a row another stage rejected)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloop.config import CurationConfig
from synthloop.curation.base import Stage, question_key, run_stages
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
from synthloop.teachers.base import Teacher, TeacherUnavailable


@dataclass
class Context:
    """What the stages need besides their settings: held-out probe questions (always decontaminated
    against), rows kept earlier (deduplicated against), where judge calls are cached, and the judge."""

    probes: list[str] = field(default_factory=list)
    earlier: list[Record] = field(default_factory=list)
    cache: ResponseCache | None = None
    run_id: str = ""
    judge: Teacher | None = None  # the judge's teacher when already built (see `preflight`)


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
        earlier: dict[str, str] = {}
        for row in context.earlier:
            earlier.setdefault(question_key(row.question), row.id)
        stages.append(ExactDedup(earlier))
    if d.near:
        n = d.near
        earlier_texts = [(row.id, record_text(row, n.field)) for row in context.earlier]
        stages.append(NearDedup(n.threshold, n.ngram, n.num_perm, n.field, earlier_texts))
    if d.semantic:
        from synthloop.curation.semantic_dedup import SemanticDedup  # needs the 'semantic' extra

        s = d.semantic
        stages.append(
            SemanticDedup(s.threshold, s.field, earlier=[(r.id, record_text(r, s.field)) for r in context.earlier])
        )
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


def reject_counts(rows: list[Record]) -> dict[str, int]:
    """Rejected rows per reason (the first rejecting stage's)."""
    reasons: dict[str, int] = {}
    for row in rows:
        if not row.kept:
            reason = row.reject_reason or "rejected"
            reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


TEACHER_MISTAKES = ("wrong_answer", "parse_error")  # the teacher's own errors, as verification found them


def mistakes_per_category(rows: list[Record], examples: int = 3) -> dict[str, Any]:
    """Rows rejected for the teacher's mistakes (a wrong or missing final answer), per category and
    reason, and the first few of each category as examples: question, the teacher's answer, the reference."""
    counts: dict[str, dict[str, int]] = {}
    shown: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.kept or row.reject_reason not in TEACHER_MISTAKES:
            continue
        per = counts.setdefault(row.skill, {})
        per[row.reject_reason] = per.get(row.reject_reason, 0) + 1
        if len(shown.setdefault(row.skill, [])) < examples:
            wrote = row.answer if row.answer is not None else " ".join((row.raw_output or "").split())[-80:]
            shown[row.skill].append(
                {
                    "question": row.question[:300],
                    "teacher": (wrote or "")[:120],
                    "reference": row.reference_answer,
                    "reason": row.reject_reason,
                }
            )
    return {"mistakes_per_category": counts, "mistake_examples": shown}


def curate_rows(
    cfg: CurationConfig, rows: list[Record], out: Path, context: Context, shard_size: int = 1000
) -> dict[str, Any]:
    """Curate `rows` with `cfg` into `out/curated` and `out/rejected` (Parquet shards) and `out/summary.json`."""
    from synthloop.storage.atomic import write_json
    from synthloop.storage.shards import mark_complete, reset, write_records

    stages = build_stages(cfg, context)
    start = time.perf_counter()
    curated = list(run_stages(stages, rows))
    kept, dropped = [r for r in curated if r.kept], [r for r in curated if not r.kept]
    for name, part in (("curated", kept), ("rejected", dropped)):
        reset(out / name)
        write_records(out / name, part, shard_size)
        mark_complete(out / name, {"rows": len(part)})
    summary = {
        "rows": len(curated),
        "kept": len(kept),
        "rejected": reject_counts(curated),
        **stage_counts(stages),
        "stages": [stage.name for stage in stages],
        "seconds": round(time.perf_counter() - start, 3),
        "warnings": curation_warnings(cfg),
    }
    write_json(out / "summary.json", summary)
    return summary
