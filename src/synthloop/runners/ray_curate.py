"""Curation on Ray Data: the same stages, verdicts and kept rows as the local engine, with the work
spread over a Ray cluster's CPUs.

The input goes once into Ray's object store, in shards of about 20,000 rows with each row's position
in the stream (every node reads them; the store spills to disk when full). An input that comes in
slices of files (`synthloop curate`'s Parquet file or folder, a loop round's generated shards, the
earlier rounds' kept rows) is read there by read tasks on the head node; any other by the driver.
Then the stages, in the recipe's order:
- row stages (verify, code tests, PII, quality, decontamination, reward model, pointwise judge) run as
  `map_batches` over the shards; each worker builds its stages once;
- exact dedup groups the live rows' question hashes globally, and the first row of each group by
  position keeps it;
- near dedup emits every live row's LSH band keys, groups them globally into candidate pairs, confirms
  each pair by the exact Jaccard of the two shingle sets, and decides greedily by position over the
  confirmed pairs (what the local index decides row by row: a row is a duplicate of the most similar
  earlier row that was itself kept);
- self-consistency and pairwise judging group rows by question globally; each group is decided whole
  and the decisions are joined back by position.
The driver reads the result in position order and writes curated/ and rejected/ exactly as the local
engine does. Ray retries a task whose worker died: a shard is redone whole, and nothing is duplicated
because every step is keyed by position.

Semantic dedup embeds the live rows on the workers (each loads the offline model once) and decides in
the driver, which holds every embedding as the local stage does."""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthloop.config import CurationConfig
from synthloop.curation.base import Stage, key_hash, question_key, run_stages
from synthloop.curation.dedup import ExactDedup
from synthloop.curation.groups import GroupedStage, Member
from synthloop.curation.near_dedup import MinHashIndex, NearDedup, shingle_hashes
from synthloop.curation.pipeline import Context, RowObserver, Tally, build_stages, stage_counts
from synthloop.curation.semantic_dedup import MiniLM, SemanticDedup, embedded, greedy_semantic_matches
from synthloop.curation.text import field_text
from synthloop.records import HUMAN, SCHEMA, Record, from_table, to_table, with_verdict_of
from synthloop.runners.local import summed
from synthloop.storage.input_files import InputFileError
from synthloop.storage.shards import ShardWriter, TableShardWriter

POSITION = "_position"
INPUT_SHARD_ROWS = 20_000  # rows per input shard written for Ray (its unit of work and of retry)
BATCH_ROWS = 1024  # rows per map_batches call
EARLIER = -(1 << 52)  # the first position of rows kept in earlier rounds: before every row of this round

# Stages a worker builds from the recipe (they hold a model or a connection); the rest are shipped as they are.
BUILT_IN_WORKER = {"reward": "reward_model", "judge": "judge", "judge_pairwise": "judge"}


_MADE: dict[tuple[str, tuple[int, ...]], list[Stage]] = {}  # per worker process: stages made once, reused


@dataclass
class WorkerStages:
    """What a worker needs to make a list of stages: stages that pickle travel as they are; a stage that
    holds a model or a connection (reward model, judge) is built in the worker from the recipe. Ray runs
    each batch as a task; a worker process makes a run's stages once (`stages_for`) and keeps them."""

    cfg: CurationConfig
    cache_path: str | None
    run_id: str
    shipped: dict[int, Stage] = field(default_factory=dict)  # by index in the full stage list
    built: dict[int, str] = field(default_factory=dict)  # index -> stage name

    def make(self, indices: list[int]) -> list[Stage]:
        stages: list[Stage] = []
        for index in indices:
            if index in self.shipped:
                stages.append(self.shipped[index])
            else:
                stages.append(self.build(self.built[index]))
        return stages

    def build(self, name: str) -> Stage:
        from synthloop.storage.response_cache import ResponseCache

        section = BUILT_IN_WORKER[name]
        only = self.cfg.model_copy(update={f: None for f in type(self.cfg).model_fields if f != section})
        cache = ResponseCache(Path(self.cache_path)) if self.cache_path else None
        (stage,) = build_stages(only, Context(cache=cache, run_id=self.run_id))
        return stage


def stages_for(maker: Any, indices: list[int]) -> list[Stage]:
    """The stages at `indices`, made once per worker process. `maker` is [token, object ref of the
    WorkerStages] (a ref inside a list is not fetched by Ray until it is needed here)."""
    import ray

    token, ref = maker
    key = (token, tuple(indices))
    if key not in _MADE:
        _MADE[key] = ray.get(ref).make(indices)
    return _MADE[key]


def stage_step(stage: Stage) -> str:
    """How a stage runs on Ray: per row (in batches), as exact or near dedup, or by question group."""
    if isinstance(stage, ExactDedup):
        return "exact"
    if isinstance(stage, NearDedup):
        return "near"
    if isinstance(stage, GroupedStage):
        return "group"
    if stage.name == "semantic_dedup":
        return "semantic"
    return "row"


def plan_steps(stages: list[Stage]) -> list[tuple[str, list[int]]]:
    """Consecutive row stages run together in one map_batches; each cross-row stage is a step alone."""
    steps: list[tuple[str, list[int]]] = []
    for index, stage in enumerate(stages):
        kind = stage_step(stage)
        if kind == "row" and steps and steps[-1][0] == "row":
            steps[-1][1].append(index)
        else:
            steps.append((kind, [index]))
    return steps


def worker_stages(cfg: CurationConfig, stages: list[Stage], context: Context) -> WorkerStages:
    out = WorkerStages(cfg, str(context.cache.path) if context.cache else None, context.run_id)
    for index, stage in enumerate(stages):
        if stage.name in BUILT_IN_WORKER:
            out.built[index] = stage.name
        elif stage_step(stage) in ("row", "group"):
            out.shipped[index] = stage
    return out


# ---- the data: Arrow tables of records with their position ----------------------------------------


def records_of(table: pa.Table) -> tuple[list[Record], pa.Array]:
    positions = table.column(POSITION)
    return from_table(table.drop_columns([c for c in table.column_names if c.startswith("_")])), positions


def table_of(records: list[Record], positions: Any, extra: pa.Table) -> pa.Table:
    """Records back to Arrow, with their positions and the columns carried through (`extra`)."""
    table = to_table(records).append_column(POSITION, pa.array(positions, pa.int64()))
    for name in extra.column_names:
        table = table.append_column(name, extra.column(name))
    return table


def counts_column(table: pa.Table, name: str, counts: dict[str, Any]) -> pa.Table:
    values = [json.dumps(counts)] + [None] * (table.num_rows - 1) if table.num_rows else []
    return table.append_column(name, pa.array(values, pa.string()))


def carried(table: pa.Table) -> pa.Table:
    """The internal columns a batch carries besides the record and its position (earlier steps' counts)."""
    names = [c for c in table.column_names if c.startswith("_counts")]
    return table.select(names)


def difference(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What counts grew by between two snapshots (numbers and nested counts)."""
    out: dict[str, Any] = {}
    for key, value in after.items():
        earlier = before.get(key)
        if isinstance(value, dict):
            out[key] = difference(value, earlier or {})
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value - (earlier or 0)
        else:
            out[key] = value
    return out


def row_step(table: pa.Table, maker: Any, indices: list[int], column: str, pending: list[Rejections]) -> pa.Table:
    """The decisions of cross-row stages before (`pending`), then row stages, applied to a batch, with what
    the stages counted on it."""
    stages = stages_for(maker, indices)
    records, positions = decided_records(table, pending)
    before = stage_counts(stages)
    records = list(run_stages(stages, records))
    out = table_of(records, positions, carried(table))
    return counts_column(out, column, difference(stage_counts(stages), before))


# ---- exact dedup ---------------------------------------------------------------------------------


def live_rows(table: pa.Table, pending: list[Rejections] = ()) -> np.ndarray:
    """Which rows of a batch every stage so far kept, read from the Arrow verdicts (no record is built),
    the decisions not yet applied (`pending`) included. A reviewer's verdict overrides the stages: such a
    row is live as the reviewer said, whatever a stage or a pending decision says."""
    decided_by_human = with_verdict_of(table, HUMAN)
    if decided_by_human.any():  # the reviewer's latest verdict: read from the records
        live = np.array([r.kept for r in records_of(table)[0]], dtype=bool)
    else:
        verdicts = table.column("verdicts").combine_chunks()
        keep = verdicts.flatten().field("keep").to_numpy(zero_copy_only=False).astype(bool)
        live = np.ones(table.num_rows, dtype=bool)
        live[pc.list_parent_indices(verdicts).to_numpy()[~keep]] = False
    positions = table.column(POSITION).to_numpy()
    for decided in pending:
        live &= ~decided.rejects(positions) | decided_by_human
    return live


def texts(table: pa.Table, rows: np.ndarray, field: str) -> list[str]:
    """`record_text` of the given rows, from the columns."""
    take = pa.array(rows, pa.int64())
    parts = [table.column(name).take(take).to_pylist() for name in ("question", "reasoning", "answer")]
    return [field_text(field, *row) for row in zip(*parts, strict=True)]


def question_keys(table: pa.Table, pending: list[Rejections] = ()) -> pa.Table:
    rows = np.flatnonzero(live_rows(table, pending))
    take = pa.array(rows, pa.int64())
    return pa.table(
        {
            "key": pa.array([key_hash(question_key(q)) for q in texts(table, rows, "question")], pa.int64()),
            POSITION: table.column(POSITION).take(take),
            "id": table.column("id").take(take),
        }
    )


def repeated_keys(keys: Any, cpus: int) -> np.ndarray:
    """The values of the "key" column that more than one row holds: a global count (one shuffle of the
    keys, counted by Arrow), of which only the repeated keys come back to the driver."""
    from ray.data.aggregate import Count

    counts = keys.groupby("key", num_partitions=cpus).aggregate(Count(alias_name="rows"))
    return to_numpy(counts.map_batches(more_than_one, batch_format="pyarrow"), ["key"])["key"]


def more_than_one(table: pa.Table) -> pa.Table:
    return table.filter(pc.greater(table.column("rows"), 1)).select(["key"])


def with_keys(table: pa.Table, keys: np.ndarray) -> pa.Table:
    """The rows of a batch whose key is one of `keys`."""
    return table.filter(pc.is_in(table.column("key"), value_set=pa.array(keys, table.schema.field("key").type)))


def later_of_each_key(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """For rows that share a question key: every row after the first (by position), with the first one's id."""
    order = np.lexsort((rows[POSITION], rows["key"]))
    keys, positions, ids = rows["key"][order], rows[POSITION][order], rows["id"][order]
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    first_of = np.maximum.accumulate(np.where(first, np.arange(len(keys)), 0))
    return {POSITION: positions[~first], "parent": ids[first_of[~first]]}


class Rejections:
    """A cross-row stage's decisions: the rows at `positions` are rejected by `stage` (duplicates of
    `parents`, with a `measure` of similarity when scored); every other live row is kept by it, with a
    note where `kept` gives one (position -> "kept for 2 duplicates")."""

    def __init__(
        self,
        stage: str,
        reason: str,
        rejections: dict[str, np.ndarray],
        measure: str = "Jaccard",
        kept: dict[int, str] | None = None,
    ):
        self.stage, self.reason, self.measure = stage, reason, measure
        order = np.argsort(rejections[POSITION], kind="stable")
        self.positions = rejections[POSITION][order]
        self.parents = rejections["parent"][order]
        self.scores = rejections["score"][order] if "score" in rejections else None
        self.kept = kept or {}

    def said(self, score: float, parent: str) -> str:
        return f"{self.measure} {score:.2f} with {parent}"

    def found(self, positions: np.ndarray) -> np.ndarray:
        """Where each of `positions` is among the rejected rows, or -1."""
        if not len(self.positions):
            return np.full(len(positions), -1, np.int64)
        where = np.minimum(np.searchsorted(self.positions, positions), len(self.positions) - 1)
        return np.where(self.positions[where] == positions, where, -1)

    def rejects(self, positions: np.ndarray) -> np.ndarray:
        where = np.minimum(np.searchsorted(self.positions, positions), max(len(self.positions) - 1, 0))
        return self.positions[where] == positions if len(self.positions) else np.zeros(len(positions), bool)

    def apply(self, records: list[Record], positions: np.ndarray) -> None:
        where = np.searchsorted(self.positions, positions)
        for i, record in enumerate(records):
            if not record.kept:
                continue
            k = int(where[i])
            if k < len(self.positions) and self.positions[k] == positions[i]:
                parent = str(self.parents[k])
                if self.scores is None:
                    record.add_verdict(self.stage, False, self.reason)
                else:
                    score = float(self.scores[k])
                    record.add_verdict(self.stage, False, self.reason, score, self.said(score, parent))
                record.parent_ids.append(parent)
            else:
                record.add_verdict(self.stage, True, None, None, self.kept.get(int(positions[i])))


def decided_records(table: pa.Table, pending: list[Rejections]) -> tuple[list[Record], pa.Array]:
    """A batch's records with the cross-row decisions not yet applied (`pending`) applied."""
    records, positions = records_of(table)
    for decided in pending:
        decided.apply(records, positions.to_numpy())
    return records, positions


def apply_pending(table: pa.Table, pending: list[Rejections]) -> pa.Table:
    """`Rejections.apply` on the Arrow columns, no record built: every live row gets each stage's verdict
    appended (a rejected row, its parent too), in the order the stages ran."""
    if not pending:
        return table
    live = live_rows(table)
    positions = table.column(POSITION).to_numpy()
    verdicts, parents = (table.column(name).combine_chunks() for name in ("verdicts", "parent_ids"))
    decided_by_human = with_verdict_of(table, HUMAN)  # a reviewer's verdict overrides: such a row stays as it is
    for decided in pending:
        rows = np.flatnonzero(live)
        found = decided.found(positions[rows])  # index into the decisions, -1 where not rejected
        rejected = found >= 0
        reason = np.where(rejected, decided.reason, None)
        score = pa.nulls(len(rows), pa.float64())
        said = np.full(len(rows), None, dtype=object)
        if decided.scores is not None:
            hit = np.zeros(len(rows))
            hit[rejected] = decided.scores[found[rejected]]
            score = pa.array(hit, pa.float64(), mask=~rejected)
            said[rejected] = [
                decided.said(float(x), p) for x, p in zip(hit[rejected], decided.parents[found[rejected]], strict=True)
            ]
        if decided.kept:
            for i in np.flatnonzero(~rejected).tolist():
                said[i] = decided.kept.get(int(positions[rows[i]]))
        detail = pa.array(said, pa.string())
        added = pa.StructArray.from_arrays(
            [
                pa.array([decided.stage] * len(rows), pa.string()),
                pa.array(~rejected),
                pa.array(reason, pa.string()),
                score,
                detail,
            ],
            fields=list(verdicts.type.value_type),
        )
        verdicts = appended(verdicts, rows, added)
        parents = appended(parents, rows[rejected], pa.array(decided.parents[found[rejected]].astype(str), pa.string()))
        live[rows[rejected]] &= decided_by_human[rows[rejected]]
    return table.set_column(table.schema.get_field_index("verdicts"), "verdicts", verdicts).set_column(
        table.schema.get_field_index("parent_ids"), "parent_ids", parents
    )


def appended(lists: pa.ListArray, rows: np.ndarray, items: pa.Array) -> pa.ListArray:
    """`lists` with `items[j]` appended to the list of row `rows[j]` (rows ascending)."""
    offsets = lists.offsets.to_numpy()
    values = lists.flatten()
    counts = np.diff(offsets)
    grown = np.zeros(len(counts), np.int64)
    grown[rows] = 1
    new_offsets = np.concatenate([[0], np.cumsum(counts + grown)])
    order = np.empty(new_offsets[-1], np.int64)
    order[np.arange(len(values)) + np.repeat(new_offsets[:-1] - (offsets[:-1] - offsets[0]), counts)] = np.arange(
        len(values)
    )
    order[new_offsets[rows] + counts[rows]] = len(values) + np.arange(len(rows))
    merged = pa.concat_arrays([values, items.cast(values.type)]).take(pa.array(order))
    return pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), merged, type=lists.type)


# ---- near dedup ----------------------------------------------------------------------------------


class NearFeatures:
    """Each live row's shingle hashes and LSH band keys (rows with no words are never compared)."""

    def __init__(self, stage: NearDedup, pending: list[Rejections]):
        index = stage.index
        self.settings, self.field = (index.threshold, index.ngram, index.num_perm, index.seed), stage.field
        self.pending = pending

    def __call__(self, table: pa.Table) -> pa.Table:
        rows = np.flatnonzero(live_rows(table, self.pending))
        index = MinHashIndex(*self.settings)  # its shingling and band keys; nothing is indexed in a worker
        take = pa.array(rows, pa.int64())
        positions = table.column(POSITION).take(take).to_numpy()
        return near_features(
            index, texts(table, rows, self.field), positions, table.column("id").take(take).to_pylist()
        )


def near_features(index: MinHashIndex, texts: list[str], positions: list[int], ids: list[str]) -> pa.Table:
    hashes, offsets = shingle_hashes(texts, index.ngram)
    keys = index.band_keys(hashes, offsets)
    live = np.flatnonzero(offsets[1:] != offsets[:-1])
    return pa.table(
        {
            POSITION: pa.array(np.asarray(positions, np.int64)[live], pa.int64()),
            "id": pa.array([ids[i] for i in live.tolist()], pa.string()),
            "shingles": pa.array([hashes[offsets[i] : offsets[i + 1]] for i in live.tolist()], pa.list_(pa.uint64())),
            "keys": pa.array([keys[i] for i in live.tolist()], pa.list_(pa.uint64())),
        }
    )


def band_rows(table: pa.Table) -> pa.Table:
    keys = table.column("keys")
    counts = np.diff(keys.combine_chunks().offsets.to_numpy()) if table.num_rows else np.zeros(0, np.int64)
    flat = keys.combine_chunks().flatten() if table.num_rows else pa.array([], pa.uint64())
    return pa.table({"key": flat, POSITION: pa.array(np.repeat(table.column(POSITION).to_numpy(), counts), pa.int64())})


def pairs_in_band(group: pa.Table) -> pa.Table:
    docs = np.unique(group.column(POSITION).to_numpy())
    first, second = np.triu_indices(len(docs), k=1)
    return pa.table({"a": pa.array(docs[first], pa.int64()), "b": pa.array(docs[second], pa.int64())})


def pair_similarity(table: pa.Table) -> pa.Table:
    mine, theirs = table.column("shingles_a").to_pylist(), table.column("shingles_b").to_pylist()
    similarity = [len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(mine, theirs, strict=True)]
    return pa.table({"a": table.column("a"), "b": table.column("b"), "id_a": table.column("id_a"),
                     "similarity": pa.array(similarity, pa.float64())})  # fmt: skip


def greedy_near(pairs: dict[str, np.ndarray], threshold: float) -> dict[str, np.ndarray]:
    """What the local index decides, from every confirmed pair: in order of position, a row is a
    duplicate of its most similar earlier row that is still kept (the lowest position on a tie)."""
    keep = pairs["similarity"] >= threshold
    a, b, sim, ids = pairs["a"][keep], pairs["b"][keep], pairs["similarity"][keep], pairs["id_a"][keep]
    order = np.lexsort((a, b)).tolist()  # by row, then by the earlier row
    rejected: dict[int, tuple[str, float]] = {}
    k = 0
    while k < len(order):
        doc, best = int(b[order[k]]), None
        while k < len(order) and int(b[order[k]]) == doc:
            i = order[k]
            if int(a[i]) not in rejected and (best is None or sim[i] > best[1]):
                best = (str(ids[i]), float(sim[i]))
            k += 1
        if best is not None:
            rejected[doc] = best
    positions = np.array(sorted(rejected), np.int64)
    return {
        POSITION: positions,
        "parent": np.array([rejected[p][0] for p in positions.tolist()], dtype=object),
        "score": np.array([rejected[p][1] for p in positions.tolist()], np.float64),
    }


# ---- semantic dedup ------------------------------------------------------------------------------

_EMBEDDERS: dict[str, Any] = {}  # per worker process: the offline MiniLM, loaded once


class SemanticFeatures:
    """Each live row's embedding, computed in the workers (each loads the offline model once)."""

    def __init__(self, stage: SemanticDedup, pending: list[Rejections]):
        self.field, self.pending = stage.field, pending
        self.embedder = None if isinstance(stage.given_embedder, MiniLM | None) else stage.given_embedder

    def __call__(self, table: pa.Table) -> pa.Table:
        rows = np.flatnonzero(live_rows(table, self.pending))
        take = pa.array(rows, pa.int64())
        found = texts(table, rows, self.field)
        vectors = embedded(self.model(), found) if found else np.zeros((0, 1), np.float32)
        return pa.table(
            {
                POSITION: table.column(POSITION).take(take),
                "id": table.column("id").take(take),
                "vector": pa.array(list(vectors), pa.list_(pa.float32())),
            }
        )

    def model(self) -> Any:
        if self.embedder is not None:
            return self.embedder
        if "minilm" not in _EMBEDDERS:
            _EMBEDDERS["minilm"] = MiniLM()
        return _EMBEDDERS["minilm"]


def semantic_rejections(ds: Any, stage: SemanticDedup, context: Context, pending: list[Rejections]) -> Rejections:
    """The local stage's decisions: every live row's embedding (and the earlier rounds' kept rows') is
    computed on the workers and gathered here, where the same greedy rule runs over all of them in
    position order. The driver holds every embedding (1.5 kB a row), as the local stage does."""
    features = ds.map_batches(SemanticFeatures(stage, pending), batch_format="pyarrow", batch_size=BATCH_ROWS)
    earlier = earlier_table(context, SemanticFeatures(stage, []))
    if earlier is not None:
        features = features.union(earlier)
    parts = list(features.iter_batches(batch_format="pyarrow", batch_size=None))
    table = pa.concat_tables(parts) if parts else None
    if table is None or not table.num_rows:
        return Rejections(stage.name, "semantic_duplicate", {POSITION: np.zeros(0, np.int64), "parent": np.zeros(0)})
    table = table.take(pc.sort_indices(table, sort_keys=[(POSITION, "ascending")]))
    positions, ids = table.column(POSITION).to_numpy(), table.column("id").to_pylist()
    vectors = np.stack([np.asarray(v, np.float32) for v in table.column("vector").to_numpy(zero_copy_only=False)])
    before = int((positions < 0).sum())  # the earlier rounds' rows come first: they are kept
    matches = greedy_semantic_matches(vectors, stage.threshold, before)
    stands_for = Counter(m.representative for m in matches)
    rejected: list[tuple[int, str, float]] = []
    kept: dict[int, str] = {}
    for i, match in enumerate(matches):
        doc = before + i
        if match.representative != doc:
            rejected.append((int(positions[doc]), ids[match.representative], match.similarity))
        elif stands_for[doc] > 1:
            kept[int(positions[doc])] = f"kept for {stands_for[doc] - 1} duplicates"
    decided = {
        POSITION: np.array([r[0] for r in rejected], np.int64),
        "parent": np.array([r[1] for r in rejected], dtype=object),
        "score": np.array([r[2] for r in rejected], np.float64),
    }
    return Rejections(stage.name, "semantic_duplicate", decided, "cosine", kept)


# ---- grouped stages ------------------------------------------------------------------------------


def group_members(table: pa.Table, maker: Any, index: int) -> pa.Table:
    """The rows a grouped stage decides, with their question's hash."""
    (stage,) = stages_for(maker, [index])
    records, positions = records_of(table)
    members = [m for i, r in enumerate(records) if (m := stage.member(r, positions[i].as_py())) is not None]
    return pa.table(
        {
            "key": pa.array([key_hash(question_key(m.question)) for m in members], pa.int64()),
            POSITION: pa.array([m.position for m in members], pa.int64()),
            "id": pa.array([m.id for m in members], pa.string()),
            "question": pa.array([m.question for m in members], pa.string()),
            "text": pa.array([m.text for m in members], pa.string()),
        }
    )


def decide_group(group: pa.Table, maker: Any, index: int, column: str) -> pa.Table:
    """One question's group decided whole, in position order."""
    (stage,) = stages_for(maker, [index])
    order = np.argsort(group.column(POSITION).to_numpy(), kind="stable").tolist()
    rows = group.to_pylist()
    members = [Member(rows[i][POSITION], rows[i]["id"], rows[i]["question"], rows[i]["text"]) for i in order]
    before = stage_counts([stage])
    (decisions,) = stage.decide([members])
    table = pa.table(
        {
            POSITION: pa.array([m.position for m in members], pa.int64()),
            "_keep": pa.array([d.keep for d in decisions], pa.bool_()),
            "_reason": pa.array([d.reason for d in decisions], pa.string()),
            "_score": pa.array([d.score for d in decisions], pa.float64()),
            "_detail": pa.array([d.detail for d in decisions], pa.string()),
            "_reference": pa.array([d.reference for d in decisions], pa.string()),
        }
    )
    return counts_column(table, column, difference(stage_counts([stage]), before))


class ApplyGroupDecisions:
    def __init__(self, stage: str):
        self.stage = stage

    def __call__(self, table: pa.Table) -> pa.Table:
        records, positions = records_of(table)
        keep, reason = table.column("_keep").to_pylist(), table.column("_reason").to_pylist()
        score, detail = table.column("_score").to_pylist(), table.column("_detail").to_pylist()
        reference = table.column("_reference").to_pylist()
        for i, record in enumerate(records):
            if keep[i] is None:
                continue
            if reference[i] is not None and record.reference_answer is None:
                record.reference_answer = reference[i]
            record.add_verdict(self.stage, bool(keep[i]), reason[i], score[i], detail[i])
        rest = table.select([c for c in table.column_names if c.startswith("_counts")])
        return table_of(records, positions, rest)


# ---- the driver ----------------------------------------------------------------------------------


def stage_input(rows: Iterable[Record], first_position: int = 0) -> list[Any]:
    """`rows` as Arrow tables of about `INPUT_SHARD_ROWS` with their positions in Ray's object store (which
    spills to disk when full): every node of a cluster reads them, and the driver keeps only references.
    An input that comes in slices (`synthloop curate`'s Parquet file or folder of shards) is read by read
    tasks on the head node, where its files are; any other is read here."""
    slices = rows.slices(INPUT_SHARD_ROWS) if hasattr(rows, "slices") else None
    if slices is not None:
        return read_slices(rows, slices, first_position)
    import ray

    refs: list[Any] = []
    batch: list[Record] = []
    position = first_position
    for row in itertools.chain(rows, [None]):
        if row is not None:
            batch.append(row)
        if batch and (row is None or len(batch) >= INPUT_SHARD_ROWS):
            refs.append(ray.put(positioned(batch, position)))
            position += len(batch)
            batch = []
    return refs


def positioned(records: list[Record], first_position: int) -> pa.Table:
    positions = pa.array(range(first_position, first_position + len(records)), pa.int64())
    return to_table(records).append_column(POSITION, positions)


def read_slices(rows: Any, slices: list[Any], first_position: int) -> list[Any]:
    """Every slice read by a task of its own; their counts are added to `rows` in order, so the first bad
    row in input order is the error raised (as the error the input's reader raises, not Ray's)."""
    import ray

    task = ray.remote(read_slice).options(num_returns=2, **HEAD_NODE, max_retries=3)
    tables, counts = [], []
    for piece in slices:
        table, count = task.remote(rows.read_slice, piece, first_position)
        tables.append(table)
        counts.append(count)
        first_position += piece.rows
    for count in counts:
        said = ray.get(count)
        if isinstance(said, str):  # the reader's own error, said as it says it
            raise InputFileError(said)
        rows.counted(*said)
    return [table for table, piece in zip(tables, slices, strict=True) if piece.rows]


def read_slice(
    read: Callable[[Any], tuple[list[Record], int]], piece: Any, first_position: int
) -> tuple[pa.Table, tuple[int, int] | str]:
    """A slice read and positioned, with its counts; a bad row comes back as its message (a value, not a
    task error, so Ray has no failed task to report besides it)."""
    try:
        records, answered = read(piece)
    except InputFileError as err:
        return to_table([]), str(err)
    return positioned(records, first_position), (len(records), answered)


def to_numpy(ds: Any, columns: list[str]) -> dict[str, np.ndarray]:
    """A small dataset (decisions) gathered on the driver as arrays."""
    parts = [] if ds is None else [batch for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None)]
    table = pa.concat_tables(parts) if parts else None
    out: dict[str, np.ndarray] = {}
    for name in columns:
        if table is None or name not in table.column_names:
            out[name] = np.zeros(0, np.int64)
        else:
            column = table.column(name)
            out[name] = column.to_numpy() if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) \
                else np.array(column.to_pylist(), dtype=object)  # fmt: skip
    return out


def parallelism() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def curate_on_ray(
    cfg: CurationConfig,
    stages: list[Stage],
    context: Context,
    rows: Iterable[Record],
    out: Path,
    shard_size: int,
    tally: Tally,
    observe: RowObserver | None = None,
) -> tuple[ShardWriter, ShardWriter, dict[str, Any]]:
    """`curate_stream` on Ray: the same rows written to `out/curated` and `out/rejected`, in the same
    order, with the same verdicts; returns the writers and the stages' counts."""
    import ray

    steps = plan_steps(stages)
    maker = [uuid.uuid4().hex, ray.put(worker_stages(cfg, stages, context))]  # fetched by workers when needed
    shards = stage_input(rows)
    if not shards:
        kept, rejected = ShardWriter(out / "curated", shard_size), ShardWriter(out / "rejected", shard_size)
        kept.close()
        rejected.close()
        return kept, rejected, stage_counts(stages)
    cpus = parallelism()
    batches = {"batch_format": "pyarrow", "batch_size": BATCH_ROWS}
    ds = ray.data.from_arrow_refs(shards)
    pending: list[Rejections] = []  # dedup decisions, applied by the next step that builds records
    joined = False
    for number, (kind, indices) in enumerate(steps):
        column = f"_counts_{number}"
        stage = stages[indices[0]]
        if kind == "row":
            on_head = head_node_if_judged([stages[i] for i in indices])
            ds = ds.map_batches(row_step, fn_args=(maker, indices, column, pending), **batches, **on_head)
            pending = []
        elif kind == "exact":
            ds = ds.materialize()  # read twice: for the keys, then for the rows
            keys = ds.map_batches(question_keys, fn_args=(pending,), **batches)
            if (earlier := earlier_table(context, question_keys)) is not None:
                keys = keys.union(earlier)
            keys = keys.materialize()  # counted, then its repeated keys' rows read
            shared = keys.map_batches(with_keys, fn_args=(repeated_keys(keys, cpus),), batch_format="pyarrow")
            later = later_of_each_key(to_numpy(shared, ["key", POSITION, "id"]))
            pending = [*pending, Rejections(stage.name, "duplicate", later)]
        elif kind == "near":
            ds = ds.materialize()
            rejections = near_rejections(ds, stage, context, cpus, pending)
            pending = [*pending, Rejections(stage.name, "near_duplicate", rejections)]
        elif kind == "semantic":
            ds = ds.materialize()
            pending = [*pending, semantic_rejections(ds, stage, context, pending)]
        else:
            if pending:
                ds = ds.map_batches(apply_pending, fn_args=(pending,), **batches)
                pending = []
            ds = ds.materialize()
            members = ds.map_batches(group_members, fn_args=(maker, indices[0]), **batches)
            decided = members.groupby("key", num_partitions=cpus).map_groups(
                decide_group, fn_args=(maker, indices[0], column), batch_format="pyarrow",
                **head_node_if_judged([stage]),
            )  # fmt: skip
            ds = ds.join(decided, "left_outer", cpus, on=(POSITION,))
            ds = ds.map_batches(ApplyGroupDecisions(stage.name), **batches)
            joined = True
    if pending:
        ds = ds.map_batches(apply_pending, fn_args=(pending,), **batches)
    if joined:
        ds = ds.sort(POSITION)
    return write_in_order(ds, stages, out, shard_size, tally, observe)


HEAD_NODE = {"resources": {"node:__internal_head__": 0.001}}  # Ray's resource of the head node


def head_node_if_judged(stages: list[Stage]) -> dict[str, Any]:
    """A judge's calls go to the run's response cache, an SQLite file on the head node's disk (SQLite
    must not be shared over a network file system): the steps that call one run there."""
    return HEAD_NODE if any(s.name in ("judge", "judge_pairwise") for s in stages) else {}


def earlier_table(context: Context, transform: Callable[[pa.Table], pa.Table]) -> Any:
    """Rows kept in earlier rounds, at positions from `EARLIER` (before every row of this round), transformed."""
    import ray

    refs = stage_input(context.earlier(), EARLIER)
    if not refs:
        return None
    return ray.data.from_arrow_refs(refs).map_batches(transform, batch_format="pyarrow", batch_size=BATCH_ROWS)


def near_rejections(
    ds: Any, stage: NearDedup, context: Context, cpus: int, pending: list[Rejections]
) -> dict[str, np.ndarray]:
    index = stage.index
    features = ds.map_batches(NearFeatures(stage, pending), batch_format="pyarrow", batch_size=BATCH_ROWS)
    earlier = earlier_table(context, NearFeatures(stage, []))
    if earlier is not None:
        features = features.union(earlier)
    features = features.materialize()
    bands = features.map_batches(band_rows, batch_format="pyarrow").materialize()
    shared = repeated_keys(bands, cpus)
    if not len(shared):  # no two rows share a band: no candidate pair, nothing to join
        return greedy_near(to_numpy(None, ["a", "b", "id_a", "similarity"]), index.threshold)
    pairs = (  # only the band keys rows share are grouped: most rows share none
        bands.map_batches(with_keys, fn_args=(shared,), batch_format="pyarrow")
        .groupby("key", num_partitions=cpus)
        .map_groups(pairs_in_band, batch_format="pyarrow")
        .groupby(["a", "b"], num_partitions=cpus)
        .count()
        .drop_columns(["count()"])
    )
    side_a = features.select_columns([POSITION, "id", "shingles"]).rename_columns(
        {POSITION: "a", "id": "id_a", "shingles": "shingles_a"}
    )
    side_b = features.select_columns([POSITION, "shingles"]).rename_columns({POSITION: "b", "shingles": "shingles_b"})
    confirmed = (
        pairs.join(side_a, "inner", cpus, on=("a",))
        .join(side_b, "inner", cpus, on=("b",))
        .map_batches(pair_similarity, batch_format="pyarrow")
    )
    return greedy_near(to_numpy(confirmed, ["a", "b", "id_a", "similarity"]), index.threshold)


def write_in_order(
    ds: Any,
    stages: list[Stage],
    out: Path,
    shard_size: int,
    tally: Tally,
    observe: RowObserver | None,
) -> tuple[TableShardWriter, TableShardWriter, dict[str, Any]]:
    """The curated rows, in position order, split into curated/ and rejected/ as Arrow tables; only the
    rejected rows become records, for the counts. `observe` sees each batch as Arrow."""
    kept, rejected = TableShardWriter(out / "curated", shard_size), TableShardWriter(out / "rejected", shard_size)
    counts: dict[str, Any] = {}
    for table in ds.iter_batches(batch_format="pyarrow", batch_size=BATCH_ROWS):
        for name in table.column_names:
            if name.startswith("_counts"):
                for value in table.column(name).to_pylist():
                    if value is not None:
                        counts = summed(counts, json.loads(value))
        live = live_rows(table)
        rows = table.select(SCHEMA.names).cast(SCHEMA)
        tally.add_kept(rows.filter(pa.array(live)).column("skill").to_pylist())
        for row in from_table(rows.filter(pa.array(~live))):
            tally.add(row)
        if observe is not None:
            observe.table(rows, table.column(POSITION).to_numpy(), live)
        kept.append(rows.filter(pa.array(live)))
        rejected.append(rows.filter(pa.array(~live)))
    kept.close()
    rejected.close()
    base = stage_counts([s for s in stages if stage_step(s) in ("exact", "near")])
    return kept, rejected, summed(base, counts)
