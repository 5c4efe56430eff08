"""The command line end to end: exit codes, files written (or not), determinism."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from allocopt.cli import cli
from tests.conftest import DATA, ROOT

TINY = str(ROOT / "instances" / "tiny.json")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def strip_timing(text: str) -> dict[str, object]:
    data = json.loads(text)
    data.pop("timing")
    return data


def test_validate_ok_prints_diagnostics() -> None:
    """A valid round exits 0 and shows demand against capacity."""
    result = run("validate", TINY)
    assert result.exit_code == 0, result.output
    assert "valid round 'tiny-2026'" in result.output
    assert "CUDA: eligible demand" in result.output
    assert "can never be funded" in result.output  # P-07 needs CUDA on x86 with 80 GB


def test_validate_bad_input_exits_2_without_traceback() -> None:
    """Bad input: exit 2, one line per problem, no traceback."""
    result = run("validate", str(DATA / "bad" / "minimum_above_request.json"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.count("error:") == 1


def test_solve_verify_report(tmp_path: Path) -> None:
    """solve writes a solution that verify accepts; report renders it in every format."""
    out = tmp_path / "tiny.solution.json"
    result = run("solve", TINY, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "proven optimal" in result.output
    assert run("verify", TINY, str(out)).exit_code == 0
    for fmt in ("table", "markdown", "csv", "json"):
        rendered = run("report", str(out), "--format", fmt)
        assert rendered.exit_code == 0
        assert "P-08" in rendered.output


def test_solve_bad_input_writes_nothing(tmp_path: Path) -> None:
    """No output file when the input is bad."""
    out = tmp_path / "s.json"
    result = run("solve", str(DATA / "bad" / "nan_rate.json"), "-o", str(out))
    assert result.exit_code == 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_infeasible_share_minimum_exits_1_and_says_by_how_much(tmp_path: Path) -> None:
    """A start-up minimum its eligible demand cannot fill: exit 1, the shortfall, no file."""
    data = json.loads(Path(TINY).read_text())
    data["policy"]["share_groups"][1]["min_share"] = 0.25
    data["policy"]["share_groups"][1]["max_share"] = 0.5
    data["policy"]["commercial"] = "exclude"  # P-03 is out: only P-04 (4,000 h) is left
    rnd = tmp_path / "round.json"
    rnd.write_text(json.dumps(data))
    out = tmp_path / "s.json"
    result = run("solve", str(rnd), "-o", str(out))
    assert result.exit_code == 1
    assert "infeasible" in result.output
    assert "Start-ups" in result.output or "startups" in result.output
    assert "0.1428" in result.output  # 4,000 of 28,000 reference GPU-h
    assert not out.exists()


def test_infeasible_found_by_the_solver_names_the_shortfall(tmp_path: Path) -> None:
    """When only the solver can tell (a commercial cap limits start-ups), the shortfall is exact."""
    data = json.loads(Path(TINY).read_text())
    data["policy"]["share_groups"][1]["min_share"] = 0.25
    data["machines"][0]["commercial_cap"] = 0.1  # P-03 can get one JUPITER unit: 2,000 ref GPU-h
    rnd = tmp_path / "round.json"
    rnd.write_text(json.dumps(data))
    result = run("solve", str(rnd), "-o", str(tmp_path / "s.json"))
    assert result.exit_code == 1
    assert "at most 6,000 reference GPU-h (21.4%) can go to Start-ups" in result.output
    assert "JUPITER Booster's commercial cap (10%, 1,000 GPU-h)" in result.output
    assert "min_share to 0.2142" in result.output
    assert not (tmp_path / "s.json").exists()


def test_solution_is_byte_identical_apart_from_timing(tmp_path: Path) -> None:
    """Same input, shuffled proposal order: the same solution file but for the timing block."""
    data = json.loads(Path(TINY).read_text())
    random.Random(3).shuffle(data["proposals"])
    data["machines"].reverse()
    shuffled = tmp_path / "shuffled.json"
    shuffled.write_text(json.dumps(data))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run("solve", TINY, "-o", str(a), "-q").exit_code == 0
    assert run("solve", str(shuffled), "-o", str(b), "-q").exit_code == 0
    assert strip_timing(a.read_text()) == strip_timing(b.read_text())
    text_a = a.read_text().split('"timing"')[0]
    text_b = b.read_text().split('"timing"')[0]
    assert text_a == text_b


def test_a_rank_solution_is_byte_identical_apart_from_timing(tmp_path: Path) -> None:
    """Under rank, on a round where LP bounds, top-ups and CP-SAT checks all settle steps, two
    solves in separate processes write the same file but for the timing block."""
    from allocopt.generate import generate_round, write_round

    rnd = tmp_path / "round.json"
    write_round(generate_round(60, 4, 2), rnd)
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    for out in outs:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "allocopt",
                "solve",
                str(rnd),
                "-o",
                str(out),
                "-q",
                "--objective",
                "rank",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    settled = {s["settled_by"] for s in json.loads(outs[0].read_text())["rank"]["steps"]}
    assert {"bound", "solver", "witness"} <= settled
    texts = [out.read_text().split('"timing"')[0] for out in outs]
    assert texts[0] == texts[1]
    assert strip_timing(outs[0].read_text()) == strip_timing(outs[1].read_text())


def test_verify_detects_tampering_and_other_round(tmp_path: Path) -> None:
    """verify exits 1 on a tampered solution and on a solution of another round."""
    out = tmp_path / "s.json"
    run("solve", TINY, "-o", str(out), "-q")
    data = json.loads(out.read_text())
    data["proposals"][7]["allocations"] = [
        {"machine": "lumi-g", "gpu_hours": 3000, "reference_gpu_hours": 3000.0}
    ]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    result = run("verify", TINY, str(tampered))
    assert result.exit_code == 1
    assert "violation" in result.output
    other = json.loads(Path(TINY).read_text())
    other["machines"][0]["gpu_hours"] = 9000
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    result = run("verify", str(other_path), str(out))
    assert result.exit_code == 1
    assert "different round" in result.output


def test_report_of_broken_solution_file_exits_2(tmp_path: Path) -> None:
    """A solution file that is not a solution is bad input, with its path."""
    bad = tmp_path / "s.json"
    bad.write_text('{"format": "allocopt-solution/1"}')
    result = run("report", str(bad))
    assert result.exit_code == 2
    assert "required field is missing" in result.output or "Field required" in result.output


def test_generate_is_deterministic(tmp_path: Path) -> None:
    """generate writes the same round for the same seed."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run("generate", "--proposals", "30", "--machines", "3", "--seed", "5", "-o", str(a)).exit_code == 0
    assert run("generate", "--proposals", "30", "--machines", "3", "--seed", "5", "-o", str(b)).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    assert run("validate", str(a)).exit_code == 0


def test_schema_describes_every_field() -> None:
    """The round schema prints as JSON Schema."""
    result = run("schema", "round")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "Machine" in schema["$defs"]


def test_usage_error_exits_2() -> None:
    """A missing argument is a usage error: exit 2."""
    assert run("solve").exit_code == 2


def test_ctrl_c_writes_the_best_solution_so_far(tmp_path: Path) -> None:
    """Ctrl-C during a long solve stops it and still writes a valid, marked solution."""
    from allocopt.generate import generate_round, write_round

    rnd = tmp_path / "big.json"
    write_round(generate_round(1500, 10, 3), rnd)
    out = tmp_path / "big.solution.json"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "allocopt", "solve", str(rnd), "-o", str(out)),
            *("--work-limit", "10000", "--gap-limit", "0"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(25)  # the warm start and the first CP-SAT solution come well before this
    assert proc.poll() is None, "the solve finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "warning: the solve was stopped by Ctrl-C: this is the best allocation found so far" in stderr
    data = json.loads(out.read_text())
    assert data["solver"]["stop_reason"] == "interrupted"
    assert data["solver"]["status"] == "feasible"
    assert run("verify", str(rnd), str(out)).exit_code == 0


def test_solve_writes_nothing_the_independent_check_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If verify ever rejected a solution, solve would exit 3 and write no file."""
    from allocopt import cli as cli_module
    from allocopt.verify import Violation

    monkeypatch.setattr(
        cli_module, "verify_solution", lambda rnd, sol: [Violation("capacity", "lumi-g", "too much")]
    )
    out = tmp_path / "s.json"
    result = run("solve", TINY, "-o", str(out))
    assert result.exit_code == 3
    assert "fails the independent check" in result.output
    assert not out.exists()


def test_gap_limit_is_reported_honestly(tmp_path: Path) -> None:
    """A solve stopped by the gap limit says so, with its proven gap; --gap-limit 0 proves optimality."""
    shipped = str(ROOT / "instances" / "eurohpc-2026.json")
    quick, exact = tmp_path / "quick.json", tmp_path / "exact.json"
    assert run("solve", shipped, "-o", str(quick), "-q").exit_code == 0
    assert run("solve", shipped, "-o", str(exact), "-q", "--gap-limit", "0").exit_code == 0
    a, b = json.loads(quick.read_text()), json.loads(exact.read_text())
    assert b["solver"]["status"] == "optimal" and b["objective"]["gap"] == 0
    if a["solver"]["status"] == "feasible":
        assert a["solver"]["stop_reason"] == "gap_limit"
        assert a["objective"]["best_bound_scaled"] > a["objective"]["scaled"]
    assert a["objective"]["gap"] <= 1e-5
    assert a["objective"]["scaled"] <= b["objective"]["scaled"] <= a["objective"]["best_bound_scaled"]
    assert "proven within the 0.0010% gap limit" in run("report", str(quick)).output or (
        a["solver"]["status"] == "optimal"
    )


def test_no_warm_start_finds_the_same_optimum(tmp_path: Path) -> None:
    """--no-warm-start is recorded in the solution and reaches the same proven optimum."""
    a, b = tmp_path / "warm.json", tmp_path / "cold.json"
    assert run("solve", TINY, "-o", str(a), "-q").exit_code == 0
    assert run("solve", TINY, "-o", str(b), "-q", "--no-warm-start").exit_code == 0
    warm, cold = json.loads(a.read_text()), json.loads(b.read_text())
    assert warm["provenance"]["options"]["warm_start"] is True
    assert cold["provenance"]["options"]["warm_start"] is False
    assert warm["objective"]["scaled"] == cold["objective"]["scaled"] == 325_500_000
    assert run("reproduce", str(b)).exit_code == 0


def test_rank_stopped_by_the_work_limit_is_not_called_infeasible(tmp_path: Path) -> None:
    """A rank solve whose first check runs out of work says so (exit 1), not 'infeasible'."""
    out = tmp_path / "rank.json"
    shipped = str(ROOT / "instances" / "eurohpc-2026.json")
    result = run("solve", shipped, "--objective", "rank", "--work-limit", "0.002", "-o", str(out), "-q")
    assert result.exit_code == 1
    assert "no allocation was found before the first rank check stopped" in result.output
    assert "infeasible" not in result.output
    assert not out.exists()


def test_reproduce_names_what_differs(tmp_path: Path) -> None:
    """An edited solution does not reproduce: reproduce exits 1 and names the difference."""
    sol = tmp_path / "tiny.solution.json"
    assert run("solve", TINY, "-o", str(sol), "-q").exit_code == 0
    data = json.loads(sol.read_text())
    data["objective"]["value"] += 1
    sol.write_text(json.dumps(data))
    result = run("reproduce", str(sol))
    assert result.exit_code == 1
    assert "differs:" in result.output and "objective" in result.output
    assert "recorded, " in result.output and "re-solved" in result.output  # not "the first/second"


@pytest.mark.parametrize("objective", ["merit", "rank"])
def test_a_solution_made_with_other_software_versions_still_reproduces(
    tmp_path: Path, objective: str
) -> None:
    """A solution from before highspy's version was recorded, or made with another version of
    any of the software, reproduces when its result is the same; reproduce notes the versions."""
    sol = tmp_path / "tiny.solution.json"
    assert run("solve", TINY, "-o", str(sol), "-q", "--objective", objective).exit_code == 0
    data = json.loads(sol.read_text())
    del data["provenance"]["highspy_version"]  # as written before it was recorded
    data["provenance"]["ortools_version"] = "9.12.0"
    sol.write_text(json.dumps(data))
    result = run("reproduce", str(sol))
    assert result.exit_code == 0, result.output
    assert "reproduced" in result.output
    assert "highspy none (now " in result.output and "OR-Tools 9.12.0 (now " in result.output


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing-folder/out.json", "does not exist"),
        (".", "is a folder"),
        ("round.json", "input files are never overwritten"),
    ],
)
def test_unwritable_output_is_bad_input_before_solving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, message: str
) -> None:
    """An output that cannot be written is refused at once (exit 2), and the input is untouched."""
    monkeypatch.chdir(tmp_path)
    original = (ROOT / "instances" / "tiny.json").read_text()
    Path("round.json").write_text(original)
    result = run("solve", "round.json", "-o", target)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert Path("round.json").read_text() == original


def test_output_files_are_readable_by_others(tmp_path: Path) -> None:
    """Solutions are written with the usual permissions, not private to their writer."""
    out = tmp_path / "tiny.solution.json"
    assert run("solve", TINY, "-o", str(out), "-q").exit_code == 0
    assert out.stat().st_mode & 0o044 == 0o044


@pytest.mark.parametrize(
    "edit",
    [
        {"best_bound_scaled": 10**12},  # why: 'optimal' with a bound far above the objective
        {"gap": 0.5},  # why: a gap the bound and the objective do not give
    ],
)
def test_verify_catches_false_proof_claims(tmp_path: Path, edit: dict[str, object]) -> None:
    """A solution claiming a proof its own figures contradict is rejected."""
    sol = tmp_path / "tiny.solution.json"
    assert run("solve", TINY, "-o", str(sol), "-q").exit_code == 0
    data = json.loads(sol.read_text())
    assert data["solver"]["status"] == "optimal"
    data["objective"].update(edit)
    sol.write_text(json.dumps(data))
    result = run("verify", TINY, str(sol))
    assert result.exit_code == 1
    assert "best_bound" in result.output


def _interrupted(*_: object, **__: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "patches",
    [
        {"lp_units": _interrupted},  # before CP-SAT starts
        # A round above the probe's size has no allocation before the warm start.
        {"PROBE_OPTIONS": 0, "warm_start": _interrupted},
    ],
    ids=["before-cp-sat", "warm-start-without-probe"],
)
def test_ctrl_c_before_any_allocation_still_writes_a_solution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patches: dict[str, object]
) -> None:
    """Ctrl-C before any allocation is at hand: the first one CP-SAT finds is written, marked
    interrupted."""
    for name, value in patches.items():
        monkeypatch.setattr(sys.modules["allocopt.solve"], name, value)
    out = tmp_path / "interrupted.json"
    shipped = str(ROOT / "instances" / "eurohpc-2026.json")
    result = run("solve", shipped, "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["solver"]["stop_reason"] == "interrupted"
    assert run("verify", shipped, str(out)).exit_code == 0


def test_ctrl_c_while_reading_writes_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C before anything is found: one clear line, exit 1, no file, no traceback."""
    monkeypatch.setattr("allocopt.cli.read_round", _interrupted)
    out = tmp_path / "never.json"
    result = run("solve", TINY, "-o", str(out))
    assert result.exit_code == 1
    assert "nothing was written" in result.output and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("objective", ["merit", "rank"])
def test_time_limit_caps_the_whole_solve(tmp_path: Path, objective: str) -> None:
    """--time-limit is a wall-clock cap on the whole solve (warm start and every rank step)."""
    out = tmp_path / "capped.json"
    shipped = str(ROOT / "instances" / "eurohpc-2026.json")
    result = run("solve", shipped, "--objective", objective, "--time-limit", "1", "-o", str(out), "-q")
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 0:
        data = json.loads(out.read_text())
        # Without the cap the merit solve takes about 3 s and the rank walk about 25 s here;
        # the slack is for reading the solution's figures and a loaded machine.
        assert data["timing"]["total_seconds"] < 4
        assert run("verify", shipped, str(out)).exit_code == 0


@pytest.mark.parametrize(
    ("proposal_id", "reason", "fragment"),
    [
        ("P-08", {"code": "below_threshold", "detail": "below the score threshold (1 < 3)"}, "does not hold"),
        ("P-08", {"code": "pinned", "detail": "pinned: not funded"}, "does not hold"),
        ("P-06", {"code": "capacity", "detail": "every machine is full"}, "'below_threshold', which holds"),
    ],
)
def test_verify_catches_reasons_that_contradict_the_rules(
    tmp_path: Path, proposal_id: str, reason: dict[str, str], fragment: str
) -> None:
    """A reason naming a rule must hold, and an eligibility rule that holds must be named."""
    sol = tmp_path / "tiny.solution.json"
    assert run("solve", TINY, "-o", str(sol), "-q").exit_code == 0
    data = json.loads(sol.read_text())
    entry = next(p for p in data["proposals"] if p["id"] == proposal_id)
    entry["reasons"] = [reason]
    sol.write_text(json.dumps(data))
    result = run("verify", TINY, str(sol))
    assert result.exit_code == 1
    assert "reason_codes" in result.output and fragment in result.output


def test_solve_never_overwrites_a_proposal_file_of_the_round(tmp_path: Path) -> None:
    """A proposal file the round names is an input too: writing over it is refused (exit 2)."""
    shutil.copytree(DATA / "split", tmp_path / "split")
    target = tmp_path / "split" / "proposals" / "P-01.json"
    original = target.read_text()
    result = run("solve", str(tmp_path / "split" / "round.json"), "-o", str(target), "-q")
    assert result.exit_code == 2
    assert "input files are never overwritten" in result.output
    assert target.read_text() == original


def test_output_through_a_symbolic_link_replaces_the_file_it_points_to(tmp_path: Path) -> None:
    """The link stays a link; the file it points to gets the solution."""
    real = tmp_path / "real.json"
    real.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert run("solve", TINY, "-o", str(link), "-q").exit_code == 0
    assert link.is_symlink()
    assert json.loads(real.read_text())["format"].startswith("allocopt-solution")


def test_output_to_a_pipe_writes_through_it(tmp_path: Path) -> None:
    """`-o` naming a device or pipe (/dev/null, a FIFO) writes to it; it is not replaced by a file."""
    solution = tmp_path / "tiny.solution.json"
    assert run("solve", TINY, "-o", str(solution), "-q").exit_code == 0
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    result = run("report", str(solution), "--format", "csv", "-o", str(fifo))
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert received and received[0].startswith("id,title,")


def _solved_tiny(tmp_path: Path) -> Path:
    out = tmp_path / "tiny.solution.json"
    assert run("solve", TINY, "-o", str(out), "-q").exit_code == 0
    return out


@pytest.mark.parametrize("option", ["--work-limit", "--gap-limit", "--time-limit"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_limits_must_be_finite_numbers(tmp_path: Path, option: str, value: str) -> None:
    """NaN passes a range check; it used to end in an internal error. Now it is a usage error."""
    result = run("solve", TINY, "-o", str(tmp_path / "x.json"), option, value)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.json").exists()


def test_report_of_a_round_file_says_so_in_one_line() -> None:
    result = run("report", TINY)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {TINY}: $: this is a round file; give a solution file that `allocopt solve` wrote"
    ]


def test_a_solution_naming_a_machine_its_round_lacks_is_bad_input(tmp_path: Path) -> None:
    """report and explain refuse it in one line (it used to be an internal error); verify
    reports it as a violation."""
    data = json.loads(_solved_tiny(tmp_path).read_text())
    awarded = next(r for r in data["proposals"] if r["allocations"])
    awarded["allocations"][0]["machine"] = "nosuch"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    for command in ("report", "explain"):
        result = run(command, str(edited))
        assert result.exit_code == 2, result.output
        assert "allocations[0].machine: no machine 'nosuch' in the round it embeds" in result.output
    result = run("verify", TINY, str(edited))
    assert result.exit_code == 1
    assert "not in the round" in result.output


def test_keep_refuses_a_solution_of_another_round(tmp_path: Path) -> None:
    previous = _solved_tiny(tmp_path)
    data = json.loads(Path(TINY).read_text())
    data["id"] = "another-round"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    result = run("solve", str(other), "-o", str(tmp_path / "x.json"), "--keep", str(previous))
    assert result.exit_code == 2
    assert "is a solution of round 'tiny-2026', not of 'another-round'" in result.output
    result = run("solve", TINY, "-o", str(tmp_path / "x.json"), "--keep-tolerance", "0.01")
    assert result.exit_code == 2
    assert "--keep-tolerance needs --keep" in result.output


def test_sweep_checks_its_knobs_and_folder_before_solving(tmp_path: Path) -> None:
    """A knob that names nothing, a file where the folder should be, or a folder holding another
    sweep's solutions: exit 2 before any solving, nothing written or deleted."""
    knob = "policy.share_groups.startups.min_share"
    result = run("sweep", TINY, "--vary", "nosuch.key=1,2", "-o", str(tmp_path / "s"))
    assert result.exit_code == 2
    assert "--vary nosuch.key: no field 'nosuch' there" in result.output
    assert not (tmp_path / "s").exists()
    a_file = tmp_path / "afile"
    a_file.write_text("")
    result = run("sweep", TINY, "--vary", f"{knob}=0.1,0.2", "-o", str(a_file))
    assert result.exit_code == 2 and "not a folder" in result.output
    folder = tmp_path / "sweep"
    assert run("sweep", TINY, "--vary", f"{knob}=0.1,0.2", "-o", str(folder)).exit_code == 0
    assert run("sweep", TINY, "--vary", f"{knob}=0.1,0.2", "-o", str(folder)).exit_code == 0  # again
    result = run("sweep", TINY, "--vary", f"{knob}=0.15", "-o", str(folder))
    assert result.exit_code == 2
    assert "2 solution file(s) of an earlier run" in result.output
    assert sorted(p.name for p in folder.glob("*.solution.json")) == [
        "min_share-0.1.solution.json",
        "min_share-0.2.solution.json",
    ]


def test_duplicate_keys_in_a_solution_file_are_refused(tmp_path: Path) -> None:
    text = _solved_tiny(tmp_path).read_text()
    doubled = tmp_path / "doubled.json"
    doubled.write_text(
        text.replace('"round_id": "tiny-2026",', '"round_id": "tiny-2026", "round_id": "x",', 1)
    )
    result = run("report", str(doubled))
    assert result.exit_code == 2
    assert "$.round_id: this key appears twice in one object; keep one" in result.output


def _interrupt_group(args: list[str], after: float, cwd: Path) -> tuple[int, str]:
    """Run allocopt in its own process group, send Ctrl-C to the whole group (as a terminal does)
    after some seconds; the exit code and what it printed on stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "allocopt", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(after)
    assert proc.poll() is None, "the command ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no worker of the group is left running
        os.killpg(proc.pid, 0)
    return proc.returncode, stderr


def test_ctrl_c_while_starting_up_is_one_line(tmp_path: Path) -> None:
    # After Python has started (its own start-up, before it handles Ctrl-C, takes a moment on a
    # loaded machine) and well before the libraries have loaded (about 1.5 s).
    code, stderr = _interrupt_group(["validate", TINY], 0.6, tmp_path)
    assert code == 1
    assert stderr.strip() == "interrupted before there was anything to write; nothing was written"


def test_ctrl_c_stops_a_stability_run_and_its_workers(tmp_path: Path) -> None:
    """Before, the first solve left Ctrl-C at the system default: the command died silently and
    its workers went on solving."""
    from allocopt.generate import generate_round, write_round

    write_round(generate_round(300, 8, 1, reviews=True), tmp_path / "r.json")
    code, stderr = _interrupt_group(["stability", "r.json", "--samples", "50"], 9, tmp_path)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert "nothing was written" in stderr


def test_output_suffix_chooses_the_format_unless_one_is_given(tmp_path: Path) -> None:
    solution = str(_solved_tiny(tmp_path))
    assert run("report", solution, "-o", str(tmp_path / "r.json")).exit_code == 0
    assert json.loads((tmp_path / "r.json").read_text())["round_id"] == "tiny-2026"
    assert run("report", solution, "-o", str(tmp_path / "r.csv")).exit_code == 0
    assert (tmp_path / "r.csv").read_text().startswith("id,")
    assert run("report", solution, "--format", "table", "-o", str(tmp_path / "t.json")).exit_code == 0
    assert not (tmp_path / "t.json").read_text().lstrip().startswith("{")
    assert run("explain", solution, "-o", str(tmp_path / "e.json")).exit_code == 0
    json.loads((tmp_path / "e.json").read_text())


def test_dash_output_is_the_screen_or_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-o - prints a text to the screen; where the output must be a file, it is a usage error.
    Neither makes a file named '-'."""
    monkeypatch.chdir(tmp_path)
    solution = str(_solved_tiny(tmp_path))
    result = run("report", solution, "-o", "-")
    assert result.exit_code == 0 and "tiny-2026" in result.output
    for args in (["solve", TINY], ["generate", "--proposals", "3", "--machines", "1", "--seed", "1"]):
        result = run(*args, "-o", "-")
        assert result.exit_code == 2 and "is a file; give a file name" in result.output
    assert not (tmp_path / "-").exists()


def test_an_empty_path_is_refused_not_taken_for_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-o "" used to be reported as a folder named '.'; an empty input path as a folder too."""
    monkeypatch.chdir(tmp_path)
    solution = str(_solved_tiny(tmp_path))
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, noun in (
        (["report", solution, "-o", ""], "file name"),
        (["solve", TINY, "-o", ""], "file name"),
        (["sweep", TINY, "--vary", "policy.score_threshold=3,4", "-o", " "], "folder name"),
        (["validate", ""], "file name"),
    ):
        result = run(*args)
        assert result.exit_code == 2, args
        assert f"is empty; give a {noun}" in result.output, args
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_counts_are_in_words_a_reader_expects(tmp_path: Path) -> None:
    result = run(
        "generate", "--proposals", "1", "--machines", "1", "--seed", "1", "-o", str(tmp_path / "g.json")
    )
    assert result.exit_code == 0
    assert result.output.strip().endswith(": 1 proposal on 1 machine")


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d["provenance"]["options"].update(gap_limit=5), "$.provenance.options.gap_limit"),
        (lambda d: d["provenance"]["options"].update(bogus=1), "$.provenance.options.bogus"),
        (
            lambda d: d["input"]["machines"][0].update(gpu_hours=20_000),
            "$.input: is not the round that was solved",
        ),
        (lambda d: d["metrics"]["machines"].pop(0), "$.metrics.machines: does not list every machine"),
        (lambda d: d["objective"].update(scale=0), "$.objective.scale"),
    ],
    ids=["options", "unknown-option", "embedded-round", "machine-metrics", "scale"],
)
def test_an_edited_solution_is_bad_input_for_every_command(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], where: str
) -> None:
    """Each used to end in an internal error (or be read as valid) in report, explain or
    reproduce; now each is one line naming the JSON path, and exit 2."""
    data = json.loads(_solved_tiny(tmp_path).read_text())
    edit(data)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    for command in (
        ["report"],
        ["explain"],
        ["reproduce"],
        ["explain", "--proposal", "P-08", "--counterfactuals"],
    ):
        result = run(*command, str(edited))
        assert result.exit_code == 2, (command, result.output)
        assert f"error: {edited}: {where}" in result.output, result.output
        assert "solve the round again" in result.output


def test_a_file_of_the_wrong_kind_is_one_line(tmp_path: Path) -> None:
    solution = _solved_tiny(tmp_path)
    report = tmp_path / "report.json"
    assert run("report", str(solution), "--format", "json", "-o", str(report)).exit_code == 0
    result = run("report", str(report))
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {report}: $: this is a JSON report, which holds no round; give a solution file that "
        "`allocopt solve` wrote"
    )
    for args in (["validate", str(solution)], ["verify", str(solution), str(solution)]):
        result = run(*args)
        assert result.exit_code == 2
        assert result.output.strip() == (
            f"error: {solution}: $: this is a 'allocopt-solution/1' file, not a round; give the round file"
        )
    # A stability analysis or a comparison gave one line per field they lack (3,500 on the shipped round).
    stability, comparison = tmp_path / "stability.json", tmp_path / "compare.json"
    stability.write_text(
        json.dumps({"format": "allocopt-stability/1", "round_id": "tiny-2026", "samples": 2})
    )
    assert run("compare", str(solution), str(solution), "-o", str(comparison)).exit_code == 0
    for args, expected in (
        (["report", str(stability)], "this is a 'allocopt-stability/1' file; give a solution file"),
        (["explain", str(stability)], "this is a 'allocopt-stability/1' file; give a solution file"),
        (["validate", str(stability)], "this is a 'allocopt-stability/1' file, not a round"),
        (["validate", str(comparison)], "this is not a round file: it has no machines, policy or proposals"),
        (["report", str(comparison)], "this is not a solution file"),
    ):
        result = run(*args)
        assert result.exit_code == 2, args
        assert len(result.output.strip().splitlines()) == 1 and expected in result.output, (
            args,
            result.output,
        )


def test_an_output_suffix_for_a_format_the_command_lacks_is_a_usage_error(tmp_path: Path) -> None:
    solution = str(_solved_tiny(tmp_path))
    result = run("explain", solution, "-o", str(tmp_path / "e.csv"))
    assert result.exit_code == 2
    assert "-o e.csv: explain writes no csv; its formats are text, json" in result.output
    assert not (tmp_path / "e.csv").exists()
    assert run("explain", solution, "--format", "text", "-o", str(tmp_path / "e.csv")).exit_code == 0
    result = run("sweep", TINY, "--vary", "policy.score_threshold=3,4", "-o", "-")
    assert result.exit_code == 2 and "give a folder name" in result.output


def test_a_lottery_under_merit_is_named_not_silently_ignored(tmp_path: Path) -> None:
    data = json.loads(Path(TINY).read_text())
    data["policy"]["lottery"] = {"low": 0.2, "high": 0.8, "samples": 2, "seed": 1}
    rnd = tmp_path / "lottery.json"
    rnd.write_text(json.dumps(data))
    for args in (["validate", str(rnd)], ["solve", str(rnd), "-o", str(tmp_path / "s.json")]):
        result = run(*args)
        assert "lottery applies only under the rank objective" in result.output, result.output


def test_compare_tells_files_of_one_name_apart(tmp_path: Path) -> None:
    first = _solved_tiny(tmp_path)
    (tmp_path / "sub").mkdir()
    second = _solved_tiny(tmp_path / "sub")
    result = run("compare", str(first), str(second))
    assert result.exit_code == 0, result.output
    assert str(second) in result.output


def test_verify_counts_an_edited_embedded_round_as_a_violation(tmp_path: Path) -> None:
    """The allocation still fits the round file given, but the file is not what solve wrote."""
    data = json.loads(_solved_tiny(tmp_path).read_text())
    data["input"]["machines"][0]["gpu_hours"] = 20_000
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    result = run("verify", TINY, str(edited))
    assert result.exit_code == 1
    assert "violation: edited: $.input: is not the round that was solved" in result.output


def test_a_seed_cp_sat_cannot_take_is_a_usage_error(tmp_path: Path) -> None:
    """CP-SAT's seed is 32-bit: 2^31 was an internal error (exit 3)."""
    result = run("solve", TINY, "-o", str(tmp_path / "s.json"), "--seed", str(2**31))
    assert result.exit_code == 2 and "0<=x<=2147483647" in result.output
    assert not (tmp_path / "s.json").exists()
    assert run("solve", TINY, "-o", str(tmp_path / "s.json"), "--seed", str(2**31 - 1), "-q").exit_code == 0


def test_keep_under_rank_is_bad_input_naming_where_rank_comes_from(tmp_path: Path) -> None:
    """--keep cannot apply to a rank solve: a usage error, or the round file's policy.objective."""
    previous = str(_solved_tiny(tmp_path))
    result = run("solve", TINY, "-o", str(tmp_path / "k.json"), "--keep", previous, "--objective", "rank")
    assert result.exit_code == 2 and "--keep applies to the merit objective" in result.output
    data = json.loads(Path(TINY).read_text())
    data["policy"]["objective"] = "rank"
    ranked = tmp_path / "rank.json"
    ranked.write_text(json.dumps(data))
    result = run("solve", str(ranked), "-o", str(tmp_path / "k.json"), "--keep", previous)
    assert result.exit_code == 2
    assert "rank.json: $.policy.objective: is 'rank'" in result.output
    assert "give --objective merit, or leave out --keep" in result.output
    assert not (tmp_path / "k.json").exists()


@pytest.mark.parametrize(
    "args",
    [["solve", TINY, "-q"], ["generate", "--proposals", "5", "--machines", "2", "--seed", "1"]],
)
@pytest.mark.parametrize("name", ["x.csv", "x.html", "x.md"])
def test_a_json_output_named_for_another_format_is_refused(
    tmp_path: Path, args: list[str], name: str
) -> None:
    """solve and generate write JSON: -o x.csv would be a JSON file named as CSV."""
    result = run(*args, "-o", str(tmp_path / name))
    assert result.exit_code == 2 and f"-o {name}:" in result.output and "name it .json" in result.output
    assert not (tmp_path / name).exists()


def test_an_edited_reason_is_caught_by_reproduce_not_by_verify(tmp_path: Path) -> None:
    """The README says so: verify rechecks rules, not the words of hours-left reasons."""
    solution = _solved_tiny(tmp_path)
    data = json.loads(solution.read_text())
    result = next(r for r in data["proposals"] if r["reasons"] and r["reasons"][0]["code"] == "capacity")
    result["reasons"][0]["detail"] = "JUPITER Booster has 5,000 GPU-h left"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    assert run("verify", TINY, str(edited)).exit_code == 0
    result = run("reproduce", str(edited))
    assert result.exit_code == 1 and "differs: the reasons or other recorded details" in result.output
