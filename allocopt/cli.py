"""The `allocopt` command line: validate, solve, verify, report, generate, schema.

Exit codes: 0 ok; 1 the rules cannot all hold, verify found violations, or no
allocation was found in time; 2 bad input or bad usage; 3 an internal error
(a bug: please report it with the command that caused it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich import progress as bars
from rich.console import Console
from rich.status import Status

from allocopt import explain as ex
from allocopt.compare import compare, differences_apart_from_timing
from allocopt.diagnose import diagnostics
from allocopt.errors import AllocoptError, InfeasibleError, InputError, Problem
from allocopt.files import (
    check_folder,
    check_writable,
    read_json,
    read_round,
    round_files,
    validate_round,
    write_atomic,
)
from allocopt.generate import generate_round, write_round
from allocopt.model import Progress
from allocopt.options import SEED_MAX, SolveOptions
from allocopt.plot import plot_frontier
from allocopt.report import (
    COMPARE_FORMATS,
    FORMATS,
    frontier_csv,
    render,
    render_comparison,
    render_frontier,
    render_summary,
)
from allocopt.review_report import FORMATS as REVIEW_FORMATS
from allocopt.review_report import render_ranking, render_stability
from allocopt.round import FORMAT as ROUND_FORMAT
from allocopt.round import Proposal, Round, json_path
from allocopt.solution import FORMAT as SOLUTION_FORMAT
from allocopt.solution import STOPPED_BY, Solution
from allocopt.solve import Keep
from allocopt.solve import solve as solve_round
from allocopt.stability import stability as run_stability
from allocopt.sweep import check_paths, frontier_rows, parse_knob, scenarios
from allocopt.sweep import run as run_sweep
from allocopt.terms import derive
from allocopt.verify import verify as verify_solution

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_BUG = 0, 1, 2, 3

err = Console(stderr=True, highlight=False)


def say(text: str) -> None:
    click.echo(text)


def warn(text: str) -> None:
    click.echo(text, err=True)


def counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def screen_width() -> int:
    """The terminal's width, or a wide page when output goes to a file or pipe."""
    return err.width if err.is_terminal else 140


def progress_bar(shown: object = True) -> bars.Progress:
    """A progress bar on the terminal for many solves (nothing when output is not a terminal)."""
    return bars.Progress(
        bars.TextColumn("{task.description}"),
        bars.BarColumn(),
        bars.MofNCompleteColumn(),
        bars.TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal or not shown,
    )


class Number(click.FloatRange):
    """A float option in a range; NaN and infinity are refused (they pass a range check)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Failed(Exception):
    """Stop a command with this exit code (messages were already printed)."""

    def __init__(self, code: int) -> None:
        self.code = code


def work_limit_option(text: str) -> Callable[[Any], Any]:
    """--work-limit, shared by the commands that solve."""
    return click.option(
        "--work-limit",
        type=Number(min=0, min_open=True),
        default=SolveOptions().work_limit,
        show_default=True,
        help=text,
    )


def gap_limit_option(text: str) -> Callable[[Any], Any]:
    """--gap-limit, shared by the commands that solve."""
    return click.option(
        "--gap-limit",
        type=Number(min=0, max=1, max_open=True),
        default=SolveOptions().gap_limit,
        show_default=True,
        help=text,
    )


class GivenPath(click.Path):
    """A file or folder path: an empty one (-o "") is refused, not taken for the current folder."""

    def __init__(self, noun: str = "file name") -> None:
        super().__init__(path_type=Path)
        self.noun = noun

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(f"is empty; give a {self.noun}", param, ctx)
        return super().convert(value, param, ctx)


def output_option(what: str) -> Callable[[Any], Any]:
    """-o/--output for the commands that print a text: write it to a file instead."""
    return click.option(
        "-o",
        "--output",
        type=GivenPath(),
        default=None,
        callback=lambda _ctx, _param, value: None if value is not None and str(value) == "-" else value,
        help=f"Write {what} to this file instead of the screen ('-': the screen).",
    )


def file_output(value: Path, what: str) -> Path:
    """-o of a command whose output is a JSON file: '-' (the screen) is refused, not made a file,
    and so is a suffix naming another format (-o x.csv would hold JSON)."""
    if str(value) == "-":
        raise click.UsageError(f"-o -: {what} is a file; give a file name")
    named = _BY_SUFFIX.get(value.suffix.lower())
    if named is not None and named != "json":
        raise click.UsageError(f"-o {value.name}: {what} is a JSON file, not {named}; name it .json")
    return value


_BY_SUFFIX = {".json": "json", ".csv": "csv", ".md": "markdown", ".html": "html", ".htm": "html"}


def chosen_format(fmt: str, output: Path | None, choices: tuple[str, ...]) -> str:
    """The --format given, else the one the output file's suffix names (-o st.json: json),
    else the default."""
    ctx = click.get_current_context()
    if ctx.get_parameter_source("fmt") != click.core.ParameterSource.DEFAULT or output is None:
        return fmt
    by_suffix = _BY_SUFFIX.get(output.suffix.lower())
    if by_suffix is not None and by_suffix not in choices:
        raise click.UsageError(
            f"-o {output.name}: {ctx.info_name} writes no {by_suffix}; its formats are "
            f"{', '.join(choices)}: give --format or another file name"
        )
    return by_suffix or fmt


def emit(text: str, output: Path | None) -> None:
    """A command's text: to the output file (atomically) when given, else to the screen."""
    if output is not None:
        write_atomic(output, text)
    else:
        click.echo(text, nl=False)


class _Commands(click.Group):
    """Runs a command and turns every error into clear lines and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Failed as exc:
            ctx.exit(exc.code)
        except InputError as exc:
            for problem in exc.problems:
                warn(f"error: {problem}")
            ctx.exit(EXIT_INPUT)
        except InfeasibleError as exc:
            warn(f"infeasible: {exc}")
            ctx.exit(EXIT_FAIL)
        except AllocoptError as exc:
            warn(f"error: {exc}")
            ctx.exit(EXIT_FAIL)
        except KeyboardInterrupt:
            warn("interrupted before there was anything to write; nothing was written")
            ctx.exit(EXIT_FAIL)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # the edge of the program: no traceback for the user
            warn(f"internal error: {type(exc).__name__}: {exc} (please report this)")
            ctx.exit(EXIT_BUG)


@click.group(
    name="allocopt",
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="allocopt")
def cli() -> None:
    """Share out accelerator time among peer-reviewed proposals, with a proof and reasons.

    Exit codes: 0 ok; 1 infeasible rules, violations or no allocation in time; 2 bad input; 3 bug.
    """


@cli.command()
@click.argument("round_file", metavar="ROUND", type=GivenPath())
def validate(round_file: Path) -> None:
    """Check a round file and print pre-solve diagnostics with advice."""
    rnd = read_round(round_file)
    findings = diagnostics(derive(rnd), rnd.policy.objective)
    say(
        f"{round_file}: valid round '{rnd.id}' with {counted(len(rnd.machines), 'machine')} and "
        f"{counted(len(rnd.proposals), 'proposal')}"
    )
    for d in findings:
        (warn if d.level == "error" else say)(f"  {d}")
    if any(d.level == "error" for d in findings):
        raise Failed(EXIT_FAIL)


@cli.command()
@click.argument("round_file", metavar="ROUND", type=GivenPath())
@click.option("-o", "--output", type=GivenPath(), required=True, help="Solution file to write.")
@work_limit_option("Deterministic work limit (CP-SAT deterministic seconds): reproducible.")
@gap_limit_option("Stop once proven within this relative gap of the best possible; 0: prove optimality.")
@click.option(
    "--time-limit",
    type=Number(min=0, min_open=True),
    default=None,
    help="Wall-clock safety cap in seconds; a solve it stops may not reproduce.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=SolveOptions().workers,
    show_default=True,
    help="CP-SAT workers (interleaved, so the result does not depend on machine load).",
)
@click.option(
    "--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True, help="CP-SAT random seed."
)
@click.option(
    "--objective",
    type=click.Choice(["merit", "rank"]),
    default=None,
    help="Override the policy's objective: 'merit' or strict 'rank'.",
)
@click.option(
    "--keep",
    "keep_file",
    type=GivenPath(),
    default=None,
    help="A previous solution to stay close to: fewest changed decisions, then fewest moved hours.",
)
@click.option(
    "--keep-tolerance",
    type=Number(min=0, max=1),
    default=0.0,
    show_default=True,
    help="With --keep: merit may fall this fraction below the best found (0.001 = 0.1 %).",
)
@click.option(
    "--no-warm-start",
    is_flag=True,
    help="Merit objective: no LP-based first allocation and no neighbourhood search "
    "(CP-SAT searches the whole round).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def solve(
    round_file: Path,
    output: Path,
    work_limit: float,
    gap_limit: float,
    time_limit: float | None,
    workers: int,
    seed: int,
    objective: str | None,
    keep_file: Path | None,
    keep_tolerance: float,
    no_warm_start: bool,
    quiet: bool,
) -> None:
    """Solve ROUND under its policy and write the solution file (atomically)."""
    output = file_output(output, "a solution")
    check_writable(output, (*round_files(round_file), *((keep_file,) if keep_file else ())))
    if keep_file is None and keep_tolerance:
        raise click.UsageError("--keep-tolerance needs --keep: the previous solution to stay close to")
    if keep_file is not None and objective == "rank":
        raise click.UsageError("--keep applies to the merit objective: a rank solve has no tolerance to use")
    rnd = read_round(round_file)
    keep = None
    if keep_file is not None and objective is None and rnd.policy.objective == "rank":
        raise InputError(
            [
                Problem(
                    str(round_file),
                    "$.policy.objective",
                    "is 'rank', and --keep applies to the merit objective (a rank solve has no "
                    "tolerance to use); give --objective merit, or leave out --keep",
                )
            ]
        )
    if keep_file is not None:
        previous = read_solution(keep_file)
        if previous.round_id != rnd.id:
            # A new version of the same round is the point of --keep; another round is a mistake.
            raise InputError(
                [
                    Problem(
                        str(keep_file),
                        "$.round_id",
                        f"is a solution of round '{previous.round_id}', not of '{rnd.id}'; "
                        "keep a solution of this round",
                    )
                ]
            )
        keep = Keep.of(previous, keep_tolerance)
    options = SolveOptions(
        objective=objective,
        workers=workers,
        seed=seed,
        work_limit=work_limit,
        gap_limit=gap_limit,
        time_limit=time_limit,
        warm_start=not no_warm_start,
    )
    if rnd.policy.lottery is not None and (objective or rnd.policy.objective) != "rank" and not quiet:
        warn("warning: policy.lottery applies only under the rank objective; no lots are drawn under 'merit'")
    status = Status("solving...", console=err) if err.is_terminal and not quiet else None
    warnings: list[str] = []

    def progress(p: Progress) -> None:  # in merit points, as the summary
        if status is not None:
            gap = (p.bound - p.objective) / max(1, abs(p.bound))
            status.update(
                f"solving: merit {p.objective / p.scale:,.4f}, bound {p.bound / p.scale:,.4f}, "
                f"gap {gap:.4%}, {p.seconds:.1f} s"
            )

    try:
        if status is not None:
            status.start()
        solution = solve_round(rnd, options, progress, keep, on_warning=warnings.append)
    finally:
        if status is not None:
            status.stop()
        if not quiet:
            for message in warnings:  # after the status line, not through it
                warn(f"warning: {message}")
    # Nothing is written that the independent check does not accept.
    violations = verify_solution(rnd, solution)
    if violations:
        for v in violations:
            warn(f"internal error: the solution fails the independent check: {v}")
        warn("nothing was written; please report this with the round file")
        raise Failed(EXIT_BUG)
    write_atomic(output, solution_json(solution))
    if not quiet:
        click.echo(render_summary(solution, width=screen_width()), nl=False)
        if solution.keep is not None:
            say(
                f"Kept close to {keep_file}: {solution.keep.changed_decisions} decision(s) changed, "
                f"{solution.keep.moved_reference_gpu_hours:,.0f} reference GPU-h moved"
            )
        say(f"Wrote {output}")
        if solution.solver.stop_reason in ("time_limit", "interrupted"):
            warn(
                f"warning: the solve was stopped by {STOPPED_BY[solution.solver.stop_reason]}: "
                "this is the best allocation found so far and may not reproduce"
            )


@cli.command()
@click.argument("round_file", metavar="ROUND", type=GivenPath())
@click.argument("solution_file", metavar="SOLUTION", type=GivenPath())
def verify(round_file: Path, solution_file: Path) -> None:
    """Recheck every rule and the objective of SOLUTION against ROUND, independently of the solver."""
    rnd = read_round(round_file)
    solution = read_solution(solution_file, names_checked=False)
    # The allocation is checked against ROUND; a file edited since solve is a violation too.
    violations: list[object] = [
        f"edited: {loc}: {message}"
        for loc, message in solution.edits()
        if loc == "$.input" or loc.startswith("$.provenance")
    ]
    violations += verify_solution(rnd, solution)
    if violations:
        for v in violations:
            warn(f"violation: {v}")
        warn(f"{solution_file}: {len(violations)} violation(s)")
        raise Failed(EXIT_FAIL)
    say(
        f"{solution_file}: valid: every rule holds and the objective "
        f"{solution.objective.scaled:,} recomputes exactly"
    )


@cli.command()
@click.argument("solution_file", metavar="SOLUTION", type=GivenPath())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@output_option("the report")
def report(solution_file: Path, fmt: str, output: Path | None) -> None:
    """Report a solution: headline, shares, machines and every proposal with its reasons."""
    if output is not None:
        check_writable(output, (solution_file,))
    solution = read_solution(solution_file)
    text = render(
        solution, chosen_format(fmt, output, FORMATS), width=screen_width() if output is None else 140
    )
    emit(text, output)


@cli.command()
@click.option("--proposals", type=click.IntRange(1, 100_000), required=True, help="Number of proposals.")
@click.option("--machines", type=click.IntRange(1, 99), required=True, help="Number of machines.")
@click.option("--seed", type=click.IntRange(min=0), required=True, help="Random seed.")
@click.option("-o", "--output", type=GivenPath(), required=True, help="Round file to write.")
@click.option(
    "--reviews",
    is_flag=True,
    help="Also give every proposal 3-4 individual reviews by reviewers in panels (the rest is unchanged).",
)
def generate(proposals: int, machines: int, seed: int, output: Path, reviews: bool) -> None:
    """Write a synthetic round on the real EuroHPC fleet (assumptions: see the README)."""
    output = file_output(output, "a round")
    check_writable(output)
    rnd = generate_round(proposals, machines, seed, reviews=reviews)
    write_round(rnd, output)
    shape = f"{counted(len(rnd.proposals), 'proposal')} on {counted(len(rnd.machines), 'machine')}"
    say(f"Wrote {output}: {shape}")


@cli.command(name="compare")
@click.argument(
    "solution_files",
    metavar="SOLUTION_A SOLUTION_B [SOLUTION_C ...]",
    nargs=-1,
    required=True,
    type=GivenPath(),
)
@click.option("--format", "fmt", type=click.Choice(COMPARE_FORMATS), default="table", show_default=True)
@output_option("the comparison")
def compare_command(solution_files: tuple[Path, ...], fmt: str, output: Path | None) -> None:
    """Compare solutions side by side; the first is the baseline the others are diffed against."""
    if output is not None:
        check_writable(output, solution_files)
    if len(solution_files) < 2:
        raise click.UsageError("give at least two solution files")
    solutions = [read_solution(path) for path in solution_files]
    names = [path.name for path in solution_files]
    # Files of one name in different folders are told apart by their paths as given.
    labels = [str(path) if names.count(path.name) > 1 else path.name for path in solution_files]
    comparison = compare(solutions, labels)
    for w in comparison.warnings:
        warn(f"warning: {w}")
    text = render_comparison(
        comparison,
        chosen_format(fmt, output, COMPARE_FORMATS),
        width=screen_width() if output is None else 140,
    )
    emit(text, output)


@cli.command()
@click.argument("round_file", metavar="ROUND", type=GivenPath())
@click.option(
    "--vary",
    "varies",
    multiple=True,
    required=True,
    metavar="KEY=START:STOP:STEP|KEY=a,b",
    help="A knob and its values, e.g. policy.share_groups.startups.min_share=0.1:0.3:0.05 "
    "or objective=merit,rank; repeat for a grid.",
)
@click.option(
    "-o",
    "--out-dir",
    type=GivenPath("folder name"),
    default=None,
    help="Folder for the solutions, frontier.csv and the plots [default: sweep-ROUND-ID].",
)
@click.option(
    "--parallel", type=click.IntRange(1, 64), default=2, show_default=True, help="Scenarios solved at once."
)
@work_limit_option("Deterministic work limit per scenario.")
@gap_limit_option("Relative gap limit per scenario.")
def sweep(
    round_file: Path,
    varies: tuple[str, ...],
    out_dir: Path | None,
    parallel: int,
    work_limit: float,
    gap_limit: float,
) -> None:
    """Solve ROUND once per value of one or more knobs; write each solution, the frontier and its plot."""
    rnd = read_round(round_file)
    try:
        knobs = [parse_knob(v) for v in varies]
        planned = scenarios(knobs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    check_paths(rnd, knobs, str(round_file))
    count = len(planned)
    if out_dir is not None and str(out_dir) == "-":
        raise click.UsageError("-o -: a sweep writes a folder of files; give a folder name")
    out_dir = out_dir or Path(f"sweep-{rnd.id}")
    check_folder(out_dir, {f"{s.slug}.solution.json" for s in planned})
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError([Problem(str(out_dir), "", f"cannot create the folder ({exc.strerror})")]) from None
    options = SolveOptions(work_limit=work_limit, gap_limit=gap_limit)
    with progress_bar() as bar:
        task = bar.add_task("solving scenarios", total=count)
        outcomes = run_sweep(
            rnd, knobs, options, str(round_file), parallel=parallel, on_done=lambda _: bar.advance(task)
        )
    for o in outcomes:
        if o.solution is not None:
            write_atomic(out_dir / f"{o.scenario.slug}.solution.json", solution_json(o.solution))
    rows = frontier_rows(outcomes)
    write_atomic(out_dir / "frontier.csv", frontier_csv(rows))
    numeric = [k.path for k in knobs if k.path != "objective"]
    title = f"{rnd.id}: merit as {numeric[0]} varies" if numeric else f"{rnd.id}: merit by objective"
    solved = sum(o.solution is not None for o in outcomes)
    plots = (  # a plot of failures alone has no merit axis to show
        plot_frontier(rows, numeric[0] if numeric else None, out_dir / "frontier", title, numeric[1:])
        if solved
        else []
    )
    click.echo(render_frontier(rows, width=screen_width()), nl=False)
    written = [*(["solutions"] if solved else []), "frontier.csv", *(p.name for p in plots)]
    say(f"{solved} of {len(outcomes)} scenarios solved; wrote {out_dir}/ ({', '.join(written)})")
    if not solved:
        warn("no scenario could be solved: see the note on each row")
        raise Failed(1)


@cli.command()
@click.argument("solution_file", metavar="SOLUTION", type=GivenPath())
def reproduce(solution_file: Path) -> None:
    """Re-solve the round embedded in SOLUTION with its recorded options; say if the result is identical."""
    solution = read_solution(solution_file)
    recorded = solution.provenance
    kept = solution.keep
    keep = Keep(tuple(kept.previous), kept.previous_input_sha256, kept.tolerance) if kept else None
    rerun = solve_round(solution.input, SolveOptions.model_validate(recorded.options), keep=keep)
    differences = differences_apart_from_timing(solution, rerun, ("recorded", "re-solved"))
    versions = [
        f"{name} {then} (now {now})"
        for name, then, now in (
            ("allocopt", recorded.allocopt_version, rerun.provenance.allocopt_version),
            ("OR-Tools", recorded.ortools_version, rerun.provenance.ortools_version),
            ("SciPy", recorded.scipy_version, rerun.provenance.scipy_version),
            ("highspy", recorded.highspy_version or "none", rerun.provenance.highspy_version or "none"),
        )
        if then != now
    ]
    if versions:
        warn(
            "note: the solution was made with " + ", ".join(versions) + "; results may differ for that reason"
        )
    if solution.solver.stop_reason in ("time_limit", "interrupted"):
        warn("note: the recorded solve was stopped by the clock or by Ctrl-C, so it need not reproduce")
    if differences:
        for line in differences:
            warn(f"differs: {line}")
        raise Failed(EXIT_FAIL)
    say(
        f"{solution_file}: reproduced: the same input (sha256 {recorded.input_sha256[:12]}...) and "
        "options give an identical solution, apart from timings"
    )


@cli.command(name="explain")
@click.argument("solution_file", metavar="SOLUTION", type=GivenPath())
@click.option("--proposal", "proposal_id", default=None, help="Explain this proposal only.")
@click.option(
    "--for-applicant",
    "applicant_id",
    default=None,
    metavar="ID",
    help="A plain-language letter for this proposal's applicant, naming no other proposal.",
)
@click.option(
    "--counterfactuals",
    is_flag=True,
    help="Re-solve to find what would have changed the decision: with --proposal (or --for-applicant) "
    "for that one, else for every eligible proposal not funded, in parallel.",
)
@click.option(
    "--parallel", type=click.IntRange(1, 64), default=2, show_default=True, help="Re-solves run at once."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@output_option("the explanation")
def explain_command(
    solution_file: Path,
    proposal_id: str | None,
    applicant_id: str | None,
    counterfactuals: bool,
    parallel: int,
    fmt: str,
    output: Path | None,
) -> None:
    """Explain every decision of SOLUTION: reasons, rank inversions, reserve lists, counterfactuals."""
    if output is not None:
        check_writable(output, (solution_file,))
    solution = read_solution(solution_file)
    for wanted in (proposal_id, applicant_id):
        if wanted is not None and wanted not in {r.id for r in solution.proposals}:
            raise click.UsageError(f"no proposal '{wanted}' in {solution_file}")
    one = applicant_id or proposal_id
    fmt = chosen_format(fmt, output, ("text", "json"))
    if counterfactuals and one is not None and solution.result(one).decision.value != "not_funded":
        raise click.UsageError(f"{one} is not an eligible proposal left unfunded: no counterfactual to find")
    targets = ([one] if one is not None else ex.rejected(solution)) if counterfactuals else []
    with progress_bar(shown=targets) as bar:
        task = bar.add_task("re-solving counterfactuals", total=len(targets))
        found = ex.counterfactuals(solution, targets, parallel=parallel, on_done=lambda _: bar.advance(task))
    if applicant_id is not None:
        letter = ex.applicant_letter(solution, applicant_id, found[0] if found else None)
        text = (
            json.dumps({"proposal": applicant_id, "letter": letter}, indent=2) + "\n"
            if fmt == "json"
            else letter
        )
    else:
        explanation = ex.explain(solution, listed=None if proposal_id else ex.LISTED_INVERSIONS)
        explanation.counterfactuals = found
        text = (
            ex.to_json(explanation, proposal_id)
            if fmt == "json"
            else ex.render_text(explanation, proposal_id)
        )
    emit(text, output)


@cli.command(name="rank")
@click.argument("round_file", metavar="ROUND", type=GivenPath())
@click.option("--format", "fmt", type=click.Choice(REVIEW_FORMATS), default="table", show_default=True)
@output_option("the ranking")
def rank_command(round_file: Path, fmt: str, output: Path | None) -> None:
    """The ranking each review calibration method gives (mean, standardised, model), side by side."""
    if output is not None:
        check_writable(output, round_files(round_file))
    rnd = read_round(round_file)
    if not any(p.reviews for p in rnd.proposals):
        raise InputError([Problem(str(round_file), "$.proposals", "no proposal has reviews; add reviews")])
    text = render_ranking(rnd, chosen_format(fmt, output, REVIEW_FORMATS), width=screen_width())
    emit(text, output)


@cli.command(name="stability")
@click.argument("round_file", metavar="ROUND", type=GivenPath())
@click.option("--samples", type=click.IntRange(1, 10_000), default=20, show_default=True, help="Re-solves.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the draws.")
@click.option(
    "--draw",
    type=click.Choice(["reviews", "model"]),
    default="reviews",
    show_default=True,
    help="'reviews': bootstrap each proposal's reviews; 'model': draw each score from its calibrated normal.",
)
@click.option(
    "--objective", type=click.Choice(["merit", "rank"]), default=None, help="Default: the policy's."
)
@click.option(
    "--parallel", type=click.IntRange(1, 64), default=2, show_default=True, help="Re-solves run at once."
)
@work_limit_option("Deterministic work limit per solve.")
@gap_limit_option("Relative gap limit per solve.")
@click.option("--format", "fmt", type=click.Choice(REVIEW_FORMATS), default="table", show_default=True)
@output_option("the stability run")
def stability_command(
    round_file: Path,
    samples: int,
    seed: int,
    draw: str,
    objective: str | None,
    parallel: int,
    work_limit: float,
    gap_limit: float,
    fmt: str,
    output: Path | None,
) -> None:
    """Re-solve ROUND with resampled review scores: each proposal's probability of being funded."""
    if output is not None:
        check_writable(output, round_files(round_file))
    rnd = read_round(round_file)
    if not any(p.reviews for p in rnd.proposals):
        raise InputError(
            [
                Problem(
                    str(round_file),
                    "$.proposals",
                    "no proposal has reviews, so no score can move; add reviews",
                )
            ]
        )
    options = SolveOptions(work_limit=work_limit, gap_limit=gap_limit, objective=objective)
    with progress_bar() as bar:
        task = bar.add_task("re-solving samples", total=samples)
        result = run_stability(
            rnd,
            options,
            samples=samples,
            seed=seed,
            draw="model" if draw == "model" else "reviews",
            parallel=parallel,
            on_done=lambda _: bar.advance(task),
        )
    text = render_stability(result, chosen_format(fmt, output, REVIEW_FORMATS), width=screen_width())
    if output is not None:
        write_atomic(output, text)
        say(
            f"wrote {output}: {result.feasible_samples} of {samples} samples solved, "
            f"{result.flip_fraction:.2%} of decisions flip"
        )
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("what", type=click.Choice(["round", "proposal", "solution"]))
def schema(what: str) -> None:
    """Print the JSON Schema of a round, proposal or solution file."""
    model: Any = {"round": Round, "proposal": Proposal, "solution": Solution}[what]
    click.echo(json.dumps(model.model_json_schema(), indent=2))


def read_solution(path: Path, *, names_checked: bool = True) -> Solution:
    """Read a solution file; problems are reported like a round file's. Unless names_checked is
    off (verify reports such things as violations), every id it names must be in its round."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError([Problem(str(path), "$", "a solution file must hold a JSON object")])
    # Another kind of file: one line, not one per field it lacks.
    kind = None
    tag = data.get("format")
    if tag == ROUND_FORMAT or "machines" in data:
        kind = "a round file"
    elif isinstance(tag, str) and tag != SOLUTION_FORMAT:
        kind = f"a '{tag}' file"
    elif "input" not in data and "explanations" in data:
        kind = "a JSON report, which holds no round"
    elif "format" not in data and "input" not in data:
        kind = "not a solution file"
    if kind is not None:
        raise InputError(
            [Problem(str(path), "$", f"this is {kind}; give a solution file that `allocopt solve` wrote")]
        )
    try:
        solution = Solution.model_validate_json(json.dumps(data), strict=False)
    except ValidationError as exc:
        raise InputError(
            [
                Problem(
                    str(path),
                    json_path(tuple(e["loc"])),
                    str(e["msg"]).removeprefix("Value error, ")
                    + "; the file is not as `allocopt solve` wrote it: solve the round again",
                )
                for e in exc.errors()
            ]
        ) from None
    validate_round(data["input"], f"{path} (embedded round)")
    unknown = solution.edits() if names_checked else []
    if unknown:
        raise InputError(
            [
                Problem(str(path), loc, f"{message}; the file was edited: solve the round again")
                for loc, message in unknown
            ]
        )
    return solution


def solution_json(solution: Solution) -> str:
    return solution.model_dump_json(indent=2) + "\n"


def main() -> None:
    """Entry point of the `allocopt` command."""
    cli()
