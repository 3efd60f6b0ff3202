"""`synthloop run`, `generate`, `curate`, `audit`, `skills list`, `skills sample`, `recipe`.

User errors (a bad recipe, an unknown skill, a bad golden file, a run directory that cannot be
used) print one line `synthloop: error: ...` and exit with status 2; nothing written is lost."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthloop.collapse.strategies import CorpusError, StrategyError
from synthloop.config import RecipeError, load_curation, load_recipe
from synthloop.curation.sandbox import SandboxUnavailable
from synthloop.registry import SKILLS, UnknownNameError
from synthloop.review.decisions import ReviewError
from synthloop.runners.ray_setup import RayUnavailable
from synthloop.scoring.item import ScoringFailed
from synthloop.skills.base import MAX_DIFFICULTY, MIN_DIFFICULTY
from synthloop.storage.input_files import InputFileError
from synthloop.storage.rundir import EmptyOutputError, RunDirError
from synthloop.teachers.base import TeacherUnavailable
from synthloop.teachers.engine import BudgetExhausted
from synthloop.training.command import TrainerFailed

if TYPE_CHECKING:
    from synthloop.records import Record

USER_ERRORS = (
    RecipeError,
    UnknownNameError,
    InputFileError,
    RunDirError,
    TeacherUnavailable,
    SandboxUnavailable,
    EmptyOutputError,
    StrategyError,  # synthloop collapse: an unknown experiment or strategy
    CorpusError,  # synthloop collapse --corpus: empty, binary, too small
    ScoringFailed,  # a judge scorer could not grade enough answers; --resume asks again
    TrainerFailed,  # an external trainer (student.trainer: command) failed; --resume retries the round
    ReviewError,  # synthloop review / export: no rounds, a port in use, a damaged decision log
    RayUnavailable,  # --engine ray: Ray not installed, a cluster address that does not answer
)
BUDGET_STOP = 3  # exit status of a run stopped cleanly by a budget cap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except USER_ERRORS as err:
        print(f"synthloop: error: {err}", file=sys.stderr)
        return 2
    except BudgetExhausted as err:
        print(
            f"synthloop: stopped: {err}. Every answer received is kept in the response cache; raise the cap in the "
            "recipe and rerun with --resume to continue without paying again.",
            file=sys.stderr,
        )
        return BUDGET_STOP
    except (OSError, sqlite3.OperationalError) as err:
        if not disk_full(err):
            raise
        where = f" writing {err.filename}" if getattr(err, "filename", None) else ""
        print(
            f"synthloop: error: the disk is full or failing{where} ({err}); free some space and rerun (with "
            "--resume if the run had started: everything finished is kept, and answers received are in the "
            "response cache)",
            file=sys.stderr,
        )
        return 2


def disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)
    return any(message in str(err) for message in ("database or disk is full", "disk I/O error"))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthloop", description="Synthetic training data with the loop closed.")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the loop (the embedded default recipe when no RECIPE is given)")
    run.add_argument("recipe", nargs="?", help="recipe YAML; omitted: the default shipped in the package")
    run.add_argument("--run-dir", type=Path, help="where outputs go (default: runs/<name>-<time>)")
    run.add_argument("--resume", action="store_true", help="continue a killed or finished run in --run-dir")
    run.add_argument(
        "--rounds", type=int, help="rounds to run instead of the recipe's (with --resume: add rounds to a finished run)"
    )
    add_engine_flags(run)
    add_cluster_flags(run)
    run.set_defaults(handler=cmd_run)

    gen = sub.add_parser("generate", help="run prompt tasks (topics, textbook, exercises, ...) from a job file")
    gen.add_argument("job", help="job YAML: teacher and steps")
    gen.add_argument("--run-dir", type=Path, help="where outputs go (default: runs/<name>-<time>)")
    gen.add_argument("--resume", action="store_true", help="continue a killed job in --run-dir")
    add_engine_flags(gen)
    add_cluster_flags(gen)
    gen.set_defaults(handler=cmd_generate)

    skills = sub.add_parser("skills", help="list or sample the procedural skills").add_subparsers(
        required=True, metavar="ACTION"
    )
    skills.add_parser("list", help="every skill with its description").set_defaults(handler=cmd_skills_list)
    sample = skills.add_parser("sample", help="print generated problems with reference solutions")
    sample.add_argument("skill")
    sample.add_argument("--n", type=int, default=5)
    sample.add_argument("--difficulty", type=int, default=1, help=f"{MIN_DIFFICULTY} to {MAX_DIFFICULTY}")
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(handler=cmd_skills_sample)
    export = skills.add_parser(
        "export", help="write skills as a plain dataset (train.jsonl, eval.jsonl) for task: dataset"
    )
    export.add_argument("--out", type=Path, required=True, help="folder for train.jsonl and eval.jsonl")
    export.add_argument("--skills", help="comma-separated skills (default: the default recipe's)")
    export.add_argument("--train-per-skill", type=int, default=500)
    export.add_argument("--eval-per-skill", type=int, default=60)
    export.add_argument(
        "--difficulty", default="1", help=f"{MIN_DIFFICULTY} to {MAX_DIFFICULTY}, or several spread evenly: 1,2,3"
    )
    export.add_argument("--seed", type=int, default=0)
    export.set_defaults(handler=cmd_skills_export)

    curate = sub.add_parser("curate", help="curate rows (JSONL, Parquet or a shard folder) with a recipe's curation")
    curate.add_argument("rows", type=Path, help="JSONL or Parquet rows (question, answer, ...), or a folder of shards")
    curate.add_argument("--recipe", help="recipe whose `curation:` section is used (default: the default recipe's)")
    curate.add_argument("--out", type=Path, required=True, help="an empty folder for curated/, rejected/, summary.json")
    curate.add_argument("--cache", type=Path, help="judge answers cache (default: OUT/cache/responses.sqlite)")
    add_cluster_flags(curate)
    curate.set_defaults(handler=cmd_curate)

    audit = sub.add_parser("audit", help="measure each curation stage's precision and recall on labelled rows")
    audit.add_argument("sample", nargs="?", type=Path, help="labelled JSONL or Parquet rows (see the README)")
    audit.add_argument("--embedded", action="store_true", help="label-free: skills' reference rows, answers corrupted")
    audit.add_argument("--rows-per-skill", type=int, default=100, help="--embedded: rows of each skill")
    audit.add_argument("--wrong", type=float, default=0.3, help="--embedded: share of answers corrupted")
    audit.add_argument("--seed", type=int, default=0)
    audit.add_argument(
        "--recipe",
        help="recipe whose `curation:` section is audited (default: the default recipe's); with --scorer, the "
        "scorer's settings (a file holding only `scorer: {...}`, a task's scorer, or curation.judge)",
    )
    audit.add_argument(
        "--scorer",
        help="audit a task scorer (exact, numeric, math, choice, regex, code, judge) on labelled replies: rows "
        "with question, answer (the reference), output and label",
    )
    audit.add_argument("--out", type=Path, help="write the full report (every false positive and negative) as JSON")
    audit.set_defaults(handler=cmd_audit)

    student = sub.add_parser("student", help="work with a run's trained student").add_subparsers(
        required=True, metavar="ACTION"
    )
    merge = student.add_parser("merge", help="merge a round's LoRA adapters into their base: a full HF checkpoint")
    merge.add_argument("adapters", type=Path, help="a LoRA round's student folder (RUN/rounds/NN/student)")
    merge.add_argument("--out", type=Path, required=True, help="an empty or new folder for the merged model")
    merge.add_argument("--base", help="the base model (default: the one the adapters were trained on)")
    merge.set_defaults(handler=cmd_student_merge)

    collapse = sub.add_parser("collapse", help="the collapse lab: a model fed on its own output, per data strategy")
    collapse.add_argument(
        "--experiment", required=True, help="gaussian, linear, skills, text, or all (each in OUT/NAME)"
    )
    collapse.add_argument(
        "--strategies",
        help="comma-separated: replace, accumulate, mix:F, accumulate-subsample, and verify+ any of them (skills, "
        "text); default: replace,accumulate (and verify+accumulate for skills and text)",
    )
    collapse.add_argument("--generations", type=int, help="default: 1000 gaussian, 50 linear, 5 skills and text")
    collapse.add_argument("--seeds", type=int, help="default: 50 gaussian and linear, 1 skills and text")
    collapse.add_argument("--corpus", type=Path, help="text: UTF-8, documents separated by blank lines or one per line")
    collapse.add_argument("--out", type=Path, required=True, help="folder for results.csv, results.md, results.png")
    collapse.set_defaults(handler=cmd_collapse)

    review = sub.add_parser("review", help="review a round's rows in a local web page (keyboard first)")
    review.add_argument("run", type=Path, help="the run directory (--run-dir of synthloop run)")
    review.add_argument("--round", type=int, help="the round to review (default: the latest with finished curation)")
    review.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    review.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    review.add_argument("--reviewer", default=os.environ.get("USER", ""), help="your name on each decision")
    review.add_argument("--audit-size", type=int, help="rows in the round's random audit slice (default 100)")
    review.set_defaults(handler=cmd_review)

    export = sub.add_parser("export", help="write a run's curated data as a dataset with a dataset card")
    export.add_argument("run", type=Path, help="the run directory (--run-dir of synthloop run)")
    export.add_argument("--round", type=int, help="one round's rows (default: every finished round's)")
    export.add_argument("--format", required=True, choices=["hf", "parquet", "jsonl"], help="hf: datasets.save_to_disk")
    export.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    export.add_argument("--license", default="other", help="license in the card's header (default: other)")
    export.set_defaults(handler=cmd_export)

    recipe = sub.add_parser("recipe", help="print the default recipe, a starting point for your own")
    recipe.set_defaults(handler=cmd_recipe)
    return p


def add_cluster_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="local: this process; ray: Ray Data (extra 'ray')"
    )
    p.add_argument("--address", help="--engine ray: the Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument(
        "--actors", type=int, help="--engine ray: actors calling the teacher (default: one per CPU of the cluster)"
    )


def start_engine(args: argparse.Namespace) -> None:
    """Join Ray now, before anything is read or written, when `--engine ray` asks for it."""
    if (args.address or getattr(args, "actors", None) is not None) and args.engine != "ray":
        raise RecipeError("--address and --actors are for --engine ray")
    if getattr(args, "actors", None) is not None and not 1 <= args.actors <= 10_000:
        raise RecipeError(f"--actors {args.actors}: give 1 to 10000")
    if args.engine == "ray":
        from synthloop.runners.ray_setup import connect

        connect(args.address)


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run", action="store_true", help="print the calls, tokens and cost it would take; send nothing"
    )
    p.add_argument("--cache", type=Path, help="response cache file to share across runs (default: RUN/cache/)")


def cmd_run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe)  # validated before anything is written
    if args.rounds is not None:
        if not 1 <= args.rounds <= 100:
            raise RecipeError(f"--rounds {args.rounds}: give 1 to 100")
        recipe = recipe.model_copy(update={"rounds": args.rounds})
    check_output_paths(args.run_dir, args.cache)
    from synthloop.loop import dry_run, run_loop  # imports torch: only when a run starts

    if args.dry_run:
        cache = args.cache or (args.run_dir / "cache" / "responses.sqlite" if args.run_dir else None)
        print("\n".join(dry_run(recipe, cache)))
        return 0
    if args.resume and args.run_dir is None:
        raise RunDirError("--resume needs --run-dir (the run to continue)")
    root = args.run_dir or Path("runs") / f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    start_engine(args)
    start = time.perf_counter()
    print(f"synthloop: running {recipe.name!r} ({recipe.rounds} rounds) in {root}", flush=True)
    log = lambda line: print(line, flush=True)  # noqa: E731
    run = run_loop(recipe, root, args.resume, log, args.cache, args.engine, args.actors)
    print(f"synthloop: done in {time.perf_counter() - start:.0f}s; metrics: {run.metrics}; report: {run.report}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from synthloop.generate import dry_run_job, load_job, run_job

    job = load_job(args.job)  # validated, input files read, before anything is written
    check_output_paths(args.run_dir, args.cache)
    base = Path(args.job).parent
    if args.dry_run:
        cache = args.cache or (args.run_dir / "cache" / "responses.sqlite" if args.run_dir else None)
        print("\n".join(dry_run_job(job, base, cache)))
        return 0
    if args.resume and args.run_dir is None:
        raise RunDirError("--resume needs --run-dir (the job to continue)")
    root = args.run_dir or Path("runs") / f"{job.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    start_engine(args)
    print(f"synthloop: generating {job.name!r} ({len(job.steps)} steps) in {root}", flush=True)
    log = lambda line: print(line, flush=True)  # noqa: E731
    metrics = run_job(job, root, base, args.resume, log, args.cache, args.engine, args.actors)
    total = metrics["total"]
    print(
        f"synthloop: done; {total['calls']} calls this run ({total['failed']} failed), {total['tokens']:,} tokens, "
        f"${total['cost_usd']:.4f}; rows in {root / 'steps'}"
    )
    return 0


def check_output_paths(run_dir: Path | None, cache: Path | None) -> None:
    """`--run-dir` must be a folder and `--cache` a SQLite file, each where one can be made: checked before
    anything is written, since a run creates its folder before it opens the cache."""
    if run_dir is not None:
        if run_dir.exists() and not run_dir.is_dir():
            raise RunDirError(f"--run-dir {run_dir} is a file; give a folder (new, or a run to --resume)")
        check_parents(run_dir, "--run-dir")
    if cache is not None:
        if cache.is_dir():
            raise RunDirError(f"--cache {cache} is a folder; give a file, e.g. {cache / 'responses.sqlite'}")
        check_parents(cache, "--cache")
        if cache.is_file() and cache.stat().st_size and not is_sqlite(cache):
            raise RunDirError(f"--cache {cache} is not a response cache (not a SQLite file); give another path")


def check_parents(path: Path, flag: str) -> None:
    """The nearest existing folder above `path` must be a folder (so the rest can be created)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"{flag} {path}: {parent} is a file, not a folder")
            return


def is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def cmd_curate(args: argparse.Namespace) -> int:
    from synthloop.curation.pipeline import Context, curate_rows, preflight
    from synthloop.storage.lock import lock_run_dir, unlock_run_dir
    from synthloop.storage.response_cache import ResponseCache

    curation = load_curation(args.recipe)
    check_curate_paths(args.rows, args.out)
    rows = CurateInput(args.rows)
    judge = preflight(curation)
    start_engine(args)
    created = not args.out.exists()
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # a terminated curation cleans up as Ctrl-C's does
    lock_run_dir(args.out)  # one writer: a run, job or curate using this folder is named and refused
    try:
        cache = ResponseCache(args.cache or args.out / "cache" / "responses.sqlite")
        context = Context(cache=cache, run_id="curate", judge=judge)
        summary = curate_rows(curation, rows, args.out, context, engine=args.engine)
        rows.check()
    except BaseException:
        unlock_run_dir(args.out)
        remove_partial_curation(args.out, created)
        raise
    unlock_run_dir(args.out)
    for warning in summary["warnings"]:
        print(f"synthloop: warning: {warning}")
    print(
        f"synthloop: kept {summary['kept']} of {summary['rows']} rows; rejected by reason: {summary['rejected']}; "
        f"written to {args.out}"
    )
    return 0


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def remove_partial_curation(out: Path, created: bool) -> None:
    """A curation cut short (a bad line, Ctrl-C) leaves no half of itself: the folder goes if it made it,
    else what it wrote there (the judge's cache stays: its answers were paid for)."""
    import shutil

    from synthloop.storage.shards import reset

    if created:
        shutil.rmtree(out, ignore_errors=True)
        return
    for name in ("curated", "rejected", "summary.json"):
        reset(out / name)


def shard_records(folder: Path) -> Iterator[Record]:
    """The records of a folder of synthloop shards, each shard checked first: a shard that is not
    Parquet, or Parquet without the record's columns (a file of your own rows: give the file itself),
    is an error naming it."""
    for path in sorted(folder.glob("part-*.parquet")):
        yield from shard_file_records(path)


def shard_file_records(path: Path) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthloop.records import SCHEMA, from_table
    from synthloop.storage.shards import parquet_batches

    try:
        with pq.ParquetFile(path) as parquet:
            check_shard(parquet, path)
            for batch in parquet_batches(parquet, 1024, SCHEMA.names):
                yield from from_table(pa.Table.from_batches([batch]).cast(SCHEMA))
    except (OSError, pa.ArrowException) as err:
        raise InputFileError(f"cannot read the shard {path}: {' '.join(str(err).split())[:200]}") from None


def check_shard(parquet: Any, path: Path) -> int:
    """A synthloop shard's row count; Parquet without the record's columns is an error naming it."""
    from synthloop.records import SCHEMA

    if missing := [name for name in SCHEMA.names if name not in parquet.schema_arrow.names]:
        raise InputFileError(
            f"{path} is not a synthloop shard (no {', '.join(missing[:4])} column); to curate your own "
            "rows, give the JSONL or Parquet file itself"
        )
    return parquet.metadata.num_rows


class CurateInput:
    """The rows `curate` reads (JSONL, Parquet or a folder of shards), streamed: a file of any size is
    read a batch at a time. A bad line raises when it is reached; `check()` afterwards refuses an input
    with no rows or no answer at all. On Ray, a Parquet file or a folder is read by read tasks instead,
    slice by slice (`slices`, `read_slice`), and what they counted is added here (`counted`)."""

    def __init__(self, path: Path):
        from synthloop.curation.audit import labelled_rows
        from synthloop.storage.input_files import iter_rows

        self.path = path
        self.rows = self.answered = 0
        self.source = None if path.is_dir() else labelled_rows(iter_rows(path, "rows"), require_answer=True)
        self.read_slice = read_slice  # what a read task calls on a slice

    def __iter__(self) -> Iterator[Record]:
        from synthloop.curation.audit import reject_unanswered

        records = (item.record for item in self.source) if self.source is not None else shard_records(self.path)
        for row in records:
            if self.source is None:
                reject_unanswered(row, f"{self.path} row {row.id}")
            self.counted(1, bool(row.answer and row.answer.strip()))
            yield row

    def counted(self, rows: int, answered: int) -> None:
        self.rows += rows
        self.answered += answered

    def check(self) -> None:
        if not self.rows:
            raise InputFileError(f"{self.path}: no rows (a folder must hold part-*.parquet shards)")
        if not self.answered:
            raise InputFileError(f"{self.path}: no row has an 'answer'; curate needs rows with question and answer")

    def slices(self, rows_per_slice: int) -> list[InputSlice] | None:
        """The input in parts of about `rows_per_slice` rows that read tasks read on their own: row groups
        of a Parquet file, or a folder's shards; None for JSONL (read in this process, in order)."""
        if self.path.is_dir():  # each shard's footer checked in order, as the local reader meets them
            paths = sorted(self.path.glob("part-*.parquet"))
            return [InputSlice(path, self.path, None, 0, read_footer(path, "the shard", check_shard)) for path in paths]
        if self.path.suffix != ".parquet":
            return None
        sizes = read_footer(self.path, "rows", row_group_rows)  # not Parquet: said as the reader says it
        out: list[InputSlice] = []
        first = 0
        for group, size in enumerate(sizes):
            if out and out[-1].rows < rows_per_slice:
                last = out[-1]
                out[-1] = InputSlice(last.path, last.label, (*last.row_groups, group), last.first_row, last.rows + size)
            else:
                out.append(InputSlice(self.path, self.path, (group,), first, size))
            first += size
        return out


@dataclass(frozen=True)
class InputSlice:
    """A part of `curate`'s input that a read task reads on its own."""

    path: Path
    label: Path  # what a bad row is named after: your file, or the folder of shards
    row_groups: tuple[int, ...] | None  # of your Parquet file; None: a whole synthloop shard
    first_row: int  # rows of the file before it: a bad row is named by its row number in the file
    rows: int


def read_slice(piece: InputSlice) -> tuple[list[Record], int]:
    """A slice's records, checked as `CurateInput` checks them, and how many have an answer."""
    from synthloop.curation.audit import labelled_rows, reject_unanswered
    from synthloop.storage.input_files import parquet_rows

    if piece.row_groups is None:
        records = list(shard_file_records(piece.path))
        for row in records:
            reject_unanswered(row, f"{piece.label} row {row.id}")
    else:
        rows = parquet_rows(piece.path, "rows", list(piece.row_groups), piece.first_row)
        records = [item.record for item in labelled_rows(rows, require_answer=True)]
    return records, sum(bool(r.answer and r.answer.strip()) for r in records)


def read_footer(path: Path, what: str, read: Callable[[Any, Path], Any]) -> Any:
    """`read(parquet, path)` of a Parquet file opened for its footer; a file that is not Parquet is an
    error naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:
            return read(parquet, path)
    except (OSError, pa.ArrowException) as err:
        raise InputFileError(f"cannot read {what} {path}: {' '.join(str(err).split())[:200]}") from None


def row_group_rows(parquet: Any, path: Path) -> list[int]:
    return [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]


def check_curate_paths(rows: Path, out: Path) -> None:
    """`--out` is a folder we may fill: not a file, not holding an earlier curation, apart from the input."""
    if out.exists() and not out.is_dir():
        raise InputFileError(f"--out {out} is a file; give a folder (it will hold curated/, rejected/, summary.json)")
    if out.is_dir() and (earlier := [n for n in ("curated", "rejected", "summary.json") if (out / n).exists()]):
        if "summary.json" in earlier:  # written last: a folder without it holds a curation cut short
            raise InputFileError(f"--out {out} already holds {', '.join(earlier)}; choose an empty folder")
        print(f"synthloop: {out} holds an unfinished curation (killed?); it is removed and done again", file=sys.stderr)
    source, target = rows.resolve(), out.resolve()
    if source == target or target in source.parents or source in target.parents:
        raise InputFileError(f"--out {out} and the rows {rows} overlap; choose a folder apart from the input")
    parent = next(p for p in (target, *target.parents) if p.exists())  # the folder it will be made in
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        what = "a file" if not parent.is_dir() else "not writable"
        raise InputFileError(f"--out {out} cannot be made: {parent} is {what}; choose another folder")


def cmd_audit(args: argparse.Namespace) -> int:
    from synthloop.curation.audit import audit, embedded_sample, format_audit, read_labelled
    from synthloop.curation.pipeline import Context, build_stages, preflight
    from synthloop.storage.atomic import write_json

    if (args.sample is None) == (not args.embedded):
        raise InputFileError("give a labelled sample file, or --embedded (not both)")
    if args.scorer is not None:
        return cmd_audit_scorer(args)
    if not 0 <= args.wrong <= 1:
        raise InputFileError(f"--wrong is a share from 0 to 1, got {args.wrong}")
    curation = load_curation(args.recipe)
    if args.embedded:
        embedded = embedded_sample(args.rows_per_skill, args.wrong, seed=args.seed)
        sample, probes = embedded.rows, embedded.probes
    else:
        sample, probes = read_labelled(args.sample), []
    context = Context(probes=probes, judge=preflight(curation))
    results = audit(build_stages(curation, context), sample)
    print(format_audit(results, len(sample)))
    if args.out:
        write_json(args.out, {"rows": len(sample), "stages": [r.as_dict() for r in results]})
        print(f"synthloop: full report in {args.out}")
    return 0


def cmd_audit_scorer(args: argparse.Namespace) -> int:
    from synthloop.curation.audit import format_audit
    from synthloop.scoring.audit import (
        audit_scorer,
        check_references,
        embedded_scorer_sample,
        read_scorer_sample,
        scorer_config,
    )
    from synthloop.scoring.scorers import make_scorer
    from synthloop.storage.atomic import write_json

    config = scorer_config(args.scorer, args.recipe)
    if args.embedded:
        rows = embedded_scorer_sample(args.scorer, args.rows_per_skill, args.seed)
    else:
        rows = read_scorer_sample(args.sample)
    scorer = make_scorer(config)  # a judge that cannot be reached, or a sandbox that does not work, stops here
    check_references(scorer, rows)
    result = audit_scorer(scorer, rows)
    header = f"audit of scorer {config.name} on {len(rows)} labelled replies (flagged = scored 0, marked wrong)"
    print(format_audit([result], len(rows), header))
    if args.out:
        write_json(
            args.out, {"rows": len(rows), "scorer": config.model_dump(mode="json"), "stages": [result.as_dict()]}
        )
        print(f"synthloop: full report in {args.out}")
    return 0


def cmd_skills_list(args: argparse.Namespace) -> int:
    for name in SKILLS:
        print(f"{name:22s} {SKILLS.get(name).description}")
    return 0


def cmd_skills_sample(args: argparse.Namespace) -> int:
    skill = SKILLS.get(args.skill)
    if not MIN_DIFFICULTY <= args.difficulty <= MAX_DIFFICULTY:
        print(
            f"synthloop: error: --difficulty must be from {MIN_DIFFICULTY} to {MAX_DIFFICULTY}, got {args.difficulty}",
            file=sys.stderr,
        )
        return 2
    for i in range(args.n):
        problem = skill.generate(args.seed, i, args.difficulty)
        print(f"--- {skill.name} #{i} (difficulty {args.difficulty})\nQ: {problem.question}\n{problem.solution}\n")
    return 0


def cmd_skills_export(args: argparse.Namespace) -> int:
    from synthloop.skills.export import export_skills

    names = [n.strip() for n in args.skills.split(",") if n.strip()] if args.skills else list(load_recipe().skills)
    for name in names:
        SKILLS.check(name)
    levels = [part.strip() for part in args.difficulty.split(",")]
    if not all(level.isdigit() and MIN_DIFFICULTY <= int(level) <= MAX_DIFFICULTY for level in levels):
        raise RecipeError(
            f"--difficulty must be {MIN_DIFFICULTY} to {MAX_DIFFICULTY} (or a list: 1,2,3), got {args.difficulty}"
        )
    if args.train_per_skill < 1 or args.eval_per_skill < 1:
        raise RecipeError("--train-per-skill and --eval-per-skill must be at least 1")
    if args.out.exists() and not args.out.is_dir():
        raise RunDirError(f"--out {args.out} is a file; give a folder")
    difficulties = [int(level) for level in levels]
    written = export_skills(args.out, names, args.train_per_skill, args.eval_per_skill, difficulties, args.seed)
    print(
        f"synthloop: wrote {written['train']} train and {written['eval']} eval rows ({', '.join(names)}) to "
        f"{args.out / 'train.jsonl'} and {args.out / 'eval.jsonl'}"
    )
    return 0


def cmd_student_merge(args: argparse.Namespace) -> int:
    from synthloop.training.lora import merge_round

    out = merge_round(args.adapters, args.out, args.base)
    print(f"synthloop: merged {args.adapters} into {out} (loads with AutoModelForCausalLM, no PEFT needed)")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from synthloop.review.rounds import check_run, pick_round
    from synthloop.review.server import serve

    if not 0 <= args.port <= 65535:
        raise ReviewError(f"--port {args.port}: give 0 to 65535")
    if args.audit_size is not None and not 1 <= args.audit_size <= 1_000_000:
        raise ReviewError(f"--audit-size {args.audit_size}: give 1 to 1,000,000")
    check_run(args.run)
    serve(args.run, pick_round(args.run, args.round), args.host, args.port, args.reviewer, args.audit_size)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from synthloop.reports.export import export_run

    summary = export_run(args.run, args.out, args.format, args.round, args.license)
    print(f"synthloop: exported {summary['rows']} rows ({args.format}) to {args.out}; card: {args.out / 'README.md'}")
    return 0


def cmd_collapse(args: argparse.Namespace) -> int:
    from synthloop.collapse.lab import run_lab

    given = args.strategies
    strategies = None if given is None else [name for name in given.split(",") if name.strip()]
    lines = run_lab(args.experiment, strategies, args.generations, args.seeds, args.out, args.corpus)
    print("\n".join(lines))
    print(f"\nsynthloop: wrote {args.out / 'results.csv'}, results.md and (with matplotlib) results.png")
    return 0


def cmd_recipe(args: argparse.Namespace) -> int:
    from synthloop.config import default_recipe_text

    print(default_recipe_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
