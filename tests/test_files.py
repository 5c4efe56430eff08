"""Reading round files: one bad file per defect, proposal files, canonical form."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from allocopt.errors import InputError
from allocopt.files import canonical_json, check_folder, read_round, sha256_of, validate_round, write_atomic
from tests.conftest import DATA, ROOT

BAD = DATA / "bad"


@pytest.mark.parametrize(
    ("name", "path", "fragment"),
    [
        ("malformed", "line 15 column 9", "malformed JSON"),
        ("wrong_type", "$.machines[0].gpu_hours", "whole number"),  # "10000" is text
        ("fractional_hours", "$.machines[0].gpu_hours", "whole number"),
        ("unknown_field", "$.machines[0].gpu_hour", "unknown field"),  # a typo
        ("duplicate_proposal_id", "$.proposals[3].id", "already used"),
        ("duplicate_machine_id", "$.machines[1].id", "already used"),
        ("negative_hours", "$.machines[1].gpu_hours", "greater than or equal to 0"),
        ("nan_rate", "$.machines[0].exchange_rate", "finite number"),
        ("infinite_request", "$.proposals[2].request.reference_gpu_hours", "Infinity"),
        ("minimum_above_request", "$.proposals[4].request", "lower the minimum"),
        ("share_min_above_max", "$.policy.share_groups[1]", "lower the minimum or raise the maximum"),
        ("unknown_kind", "$.policy.share_groups[0].kinds[2]", "'start-up'"),
        ("unknown_stack", "$.proposals[0].requirements.stacks[1]", "'cuda' or 'rocm'"),
        ("kind_in_two_groups", "$.policy.share_groups[1].kinds", "one group only"),
        ("score_outside_scale", "$.proposals[1].score", "outside the round's scale"),
        ("missing_field", "$.proposals[5].applicant", "required field is missing; add it"),
        ("missing_proposal_file", "$.proposals[8]", "not found"),
        ("embargo_without_months", "$.proposals[3].publication", "embargo_months"),
        ("not_an_object", "$", "JSON object"),
        ("soft_without_penalty", "$.policy.share_groups[1]", "needs a penalty"),
        ("pin_unknown_proposal", "$.policy.pins[0].proposal", "unknown proposal 'P-99'"),
        ("pinned_twice", "$.policy.pins[1].proposal", "pinned twice"),
        ("option_machine_twice", "$.proposals[0].request.machine_options[1].machine", "listed twice"),
        ("exclusive_unknown_proposal", "$.policy.exclusive[0].proposals", "unknown proposal 'P-99'"),
        ("exclude_pin_with_machine", "$.policy.pins[0]", "takes no machine"),
        ("duplicate_key", "$.machines[1].gpu_hours", "appears twice"),  # JSON would keep the last
    ],
)
def test_bad_file_is_reported_with_file_path_and_fix(name: str, path: str, fragment: str) -> None:
    """Each defect gives exactly one problem naming the file, the JSON path and what to do."""
    with pytest.raises(InputError) as caught:
        read_round(BAD / f"{name}.json")
    problems = caught.value.problems
    assert len(problems) == 1, problems
    assert problems[0].file == str(BAD / f"{name}.json")
    assert problems[0].path == path
    assert fragment in problems[0].message


def test_missing_round_file() -> None:
    """A round file that does not exist is one clear problem."""
    with pytest.raises(InputError, match="no such file"):
        read_round(BAD / "nowhere.json")


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    """Every problem in a file is reported, one per line, not just the first."""
    data = json.loads((ROOT / "instances" / "tiny.json").read_text())
    data["machines"][0]["gpu_hours"] = -1
    data["proposals"][0]["score"] = "high"
    data["proposals"][1]["request"]["reference_gpu_hours"] = 0
    bad = tmp_path / "round.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError) as caught:
        read_round(bad)
    paths = sorted(p.path for p in caught.value.problems)
    assert paths == [
        "$.machines[0].gpu_hours",
        "$.proposals[0].score",
        "$.proposals[1].request.reference_gpu_hours",
    ]


def test_proposal_files_are_inlined() -> None:
    """Proposals may be listed as files (one object or a list each), relative to the round."""
    split = read_round(DATA / "split" / "round.json")
    inline = read_round(ROOT / "instances" / "tiny.json")
    assert sha256_of(split) == sha256_of(inline)


def test_problem_in_a_proposal_file_names_that_file() -> None:
    """An error inside a proposal file points into that file, not the round."""
    with pytest.raises(InputError) as caught:
        read_round(DATA / "split" / "round-bad.json")
    (problem,) = caught.value.problems
    assert problem.file.endswith("batch-bad.json")
    assert problem.path == "$[1].request"


def test_canonical_form_ignores_order(tmp_path: Path) -> None:
    """Shuffling proposals, machines, groups and list members does not change the hash."""
    data = json.loads((ROOT / "instances" / "tiny.json").read_text())
    rng = random.Random(7)
    for key in ("proposals", "machines"):
        rng.shuffle(data[key])
    data["policy"]["share_groups"].reverse()
    for p in data["proposals"]:
        p["requirements"]["cpu_archs"].reverse()
    shuffled = tmp_path / "shuffled.json"
    shuffled.write_text(json.dumps(data))
    a, b = read_round(ROOT / "instances" / "tiny.json"), read_round(shuffled)
    assert canonical_json(a) == canonical_json(b)
    assert [p.id for p in b.proposals] == sorted(p.id for p in b.proposals)


def test_write_atomic_leaves_no_partial_file(tmp_path: Path) -> None:
    """A failed write leaves neither the target nor a temporary file behind."""
    target = tmp_path / "out.json"

    with pytest.raises(TypeError):
        write_atomic(target, 123)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    write_atomic(target, "ok\n")
    assert target.read_text() == "ok\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """Some editors start UTF-8 files with a byte-order mark; the round reads the same."""
    plain = ROOT / "instances" / "tiny.json"
    marked = tmp_path / "tiny.json"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert read_round(marked) == read_round(plain)


def test_absurdly_deep_nesting_is_one_problem(tmp_path: Path) -> None:
    """JSON nested beyond reason is bad input, not a crash."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="nested too deeply"):
        read_round(deep)


def test_hours_beyond_a_trillion_are_bad_input(tmp_path: Path) -> None:
    """A request of 10**25 GPU-hours is a typo the solver cannot hold: named, with its path."""
    data = json.loads((ROOT / "instances" / "tiny.json").read_text())
    data["proposals"][0]["request"]["reference_gpu_hours"] = 10**25
    file = tmp_path / "huge.json"
    file.write_text(json.dumps(data))
    with pytest.raises(InputError) as caught:
        read_round(file)
    assert [p.path for p in caught.value.problems] == ["$.proposals[0].request.reference_gpu_hours"]


def test_check_folder_refuses_a_file_and_an_earlier_runs_solutions(tmp_path: Path) -> None:
    """An output folder must be a folder, and hold no solution files this run would not write."""
    a_file = tmp_path / "afile"
    a_file.write_text("")
    with pytest.raises(InputError, match="not a folder"):
        check_folder(a_file, set())
    check_folder(tmp_path / "new" / "deeper", {"a.solution.json"})  # to be created: fine
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "a.solution.json").write_text("{}")
    check_folder(earlier, {"a.solution.json"})  # the same run again replaces its own files
    with pytest.raises(InputError, match=r"1 solution file\(s\) of an earlier run \(a.solution.json\)"):
        check_folder(earlier, {"b.solution.json"})
    assert (earlier / "a.solution.json").exists()  # nothing is deleted


def test_a_value_outside_a_list_of_choices_says_what_to_write() -> None:
    data = json.loads((ROOT / "instances" / "tiny.json").read_text())
    data["machines"][0]["stack"] = "cuda12"
    with pytest.raises(InputError) as caught:
        validate_round(data, "round.json")
    (problem,) = caught.value.problems
    assert problem.path == "$.machines[0].stack"
    assert (
        problem.message == "Input should be 'cuda' or 'rocm' (got \"cuda12\"); write one of the values listed"
    )


def test_a_score_threshold_above_the_scale_is_bad_input() -> None:
    data = json.loads((ROOT / "instances" / "tiny.json").read_text())
    data["policy"]["score_threshold"] = 7  # the scale is 0-5
    with pytest.raises(InputError) as caught:
        validate_round(data, "round.json")
    (problem,) = caught.value.problems
    assert problem.path == "$.policy.score_threshold"
    assert "above the score scale's maximum (5)" in problem.message
