"""Reading round files, canonical form and hashing, and atomic writes.

Every problem in an input file becomes a ``Problem`` that names the file, the
JSON path and what to do, so the CLI can print one line per problem. Output
files are written to a temporary file beside the target and renamed into
place, so a crash or Ctrl-C never leaves a half-written file behind.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from allocopt.errors import InputError, Problem
from allocopt.round import FORMAT as ROUND_FORMAT
from allocopt.round import Loc, Round, cross_check, json_path
from allocopt.terms import derive

# Hints appended to pydantic's own messages, by error type.
_HINTS = {
    "missing": "add it",
    "extra_forbidden": "unknown field; remove it or fix its spelling",
    "int_type": "write a whole number, e.g. 1000",
    "int_parsing": "write a whole number, e.g. 1000",
    "int_from_float": "write a whole number, e.g. 1000",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "finite_number": "write a finite number (not NaN or Infinity)",
    "string_type": "write a text in double quotes",
    "string_pattern_mismatch": "see the field's description in `allocopt schema`",
    "model_type": "write a JSON object { ... }",
    "model_attributes_type": "write a JSON object { ... }",
    "list_type": "write a JSON list [ ... ]",
    "bool_type": "write true or false",
    "greater_than": "change the value (see `allocopt schema round`)",
    "greater_than_equal": "change the value (see `allocopt schema round`)",
    "less_than": "change the value (see `allocopt schema round`)",
    "less_than_equal": "change the value (see `allocopt schema round`)",
    "literal_error": "write one of the values listed",
    "enum": "write one of the values listed",
    "bool_parsing": "write true or false",
    "dict_type": "write a JSON object { ... }",
    "too_short": "add the entries it needs (see `allocopt schema round`)",
    "too_long": "remove entries (see `allocopt schema round`)",
    "string_too_short": "write a non-empty text",
    "string_too_long": "shorten it",
}


def read_json(path: Path, shown: str | None = None) -> Any:
    """Parse a JSON file, turning every way it can fail into an ``InputError``."""
    shown = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark some editors write is fine
    except FileNotFoundError:
        raise InputError([Problem(shown, "", "no such file; check the path")]) from None
    except IsADirectoryError:
        raise InputError([Problem(shown, "", "is a folder, not a JSON file")]) from None
    except UnicodeDecodeError:
        raise InputError([Problem(shown, "", "is not UTF-8 text; save it as UTF-8")]) from None
    except OSError as exc:
        raise InputError([Problem(shown, "", f"cannot be read ({exc.strerror})")]) from None
    try:
        data = json.loads(text, object_pairs_hook=_Object.of)
        repeated = _repeated_keys(data, ())
    except RecursionError:
        raise InputError(
            [Problem(shown, "", "is nested too deeply to be a round or solution file")]
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            [
                Problem(
                    shown,
                    f"line {exc.lineno} column {exc.colno}",
                    f"malformed JSON ({exc.msg}); fix the syntax there",
                )
            ]
        ) from None
    if repeated:
        raise InputError(
            [
                Problem(shown, json_path(loc), "this key appears twice in one object; keep one")
                for loc in repeated
            ]
        )
    return data


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers keys it held twice (json keeps the last silently)."""

    repeated: tuple[str, ...] = ()

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> _Object:
        obj = cls(pairs)
        if len(obj) < len(pairs):
            counts = Counter(k for k, _ in pairs)
            obj.repeated = tuple(k for k in obj if counts[k] > 1)
        return obj


def _repeated_keys(data: Any, loc: Loc) -> list[Loc]:
    """The path of every key a JSON object held twice."""
    found: list[Loc] = []
    if isinstance(data, _Object):
        found += [(*loc, key) for key in data.repeated]
        for key, value in data.items():
            found += _repeated_keys(value, (*loc, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _repeated_keys(value, (*loc, i))
    return found


def read_round(path: str | Path) -> Round:
    """Read and validate a round file, inlining its proposal files.

    Raises ``InputError`` listing every problem found. The round comes back in
    canonical order (machines, groups and proposals sorted by id).
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError([Problem(str(path), "$", "a round file must hold a JSON object")])
    # Another kind of file: one line, not one per field it lacks.
    tag = data.get("format")
    if isinstance(tag, str) and tag.startswith("allocopt-round/") and tag != ROUND_FORMAT:
        wrong: str | None = f"the round format '{tag}' is not one this version reads ({ROUND_FORMAT})"
    elif isinstance(tag, str) and tag != ROUND_FORMAT:
        wrong = f"this is a '{tag}' file, not a round"
    elif "provenance" in data or "round_id" in data:
        wrong = "this is a solution or report, not a round"
    elif tag is None and not {"machines", "policy", "proposals"} & data.keys():
        wrong = "this is not a round file: it has no machines, policy or proposals"
    else:
        wrong = None
    if wrong is not None:
        raise InputError([Problem(str(path), "$", f"{wrong}; give the round file")])
    origins, problems = _inline_proposal_files(path, data)
    if problems:
        raise InputError(problems)
    return validate_round(data, str(path), origins)


def validate_round(data: dict[str, Any], shown: str, origins: list[tuple[str, Loc]] | None = None) -> Round:
    """Validate round data already in memory (e.g. a solution's embedded input)."""
    origins = origins or []
    _fill_scores(data)
    try:
        rnd = Round.model_validate_json(json.dumps(data), strict=True, context={"defer_cross_checks": True})
    except ValidationError as exc:
        raise InputError(
            [_locate(shown, origins, tuple(err["loc"]), _message(err)) for err in exc.errors()]
        ) from None
    cross = cross_check(rnd)
    if cross:
        raise InputError([_locate(shown, origins, loc, msg) for loc, msg in cross])
    pins = derive(rnd).problems
    if pins:
        raise InputError([_locate(shown, origins, loc, msg) for loc, msg in pins])
    return rnd.canonical()


def _fill_scores(data: dict[str, Any]) -> None:
    """A proposal given reviews but no score gets the plain (criterion-weighted) mean of its
    reviews as its score, so the canonical round always has one. Anything malformed is left
    for validation to report."""
    policy = data.get("policy")
    reviews_policy = policy.get("reviews") if isinstance(policy, dict) else None
    weights = reviews_policy.get("criteria", {}) if isinstance(reviews_policy, dict) else {}
    if not isinstance(weights, dict) or not all(_is_number(w) and w > 0 for w in weights.values()):
        return
    scale = data.get("score_scale")
    lowest = scale.get("min", 0) if isinstance(scale, dict) and _is_number(scale.get("min", 0)) else 0
    for entry in data.get("proposals") or []:
        if not isinstance(entry, dict) or "score" in entry or not isinstance(entry.get("reviews"), list):
            continue
        values = [_review_value(r, weights) for r in entry["reviews"]]
        if values and all(v is not None for v in values):
            entry["score"] = round(sum(v for v in values if v is not None) / len(values), 6)
        elif values:
            # A review that cannot be combined is an error validation reports at its own path;
            # a stand-in score keeps a misleading "score is missing" out of the way.
            entry["score"] = lowest


def _review_value(review: Any, weights: dict[str, float]) -> float | None:
    if not isinstance(review, dict):
        return None
    score, criteria = review.get("score"), review.get("criteria")
    if isinstance(score, int | float) and _is_number(score) and criteria is None:
        return float(score)
    if score is not None or not isinstance(criteria, dict) or not criteria or set(criteria) != set(weights):
        return None
    if not all(_is_number(v) for v in criteria.values()):
        return None
    return sum(weights[k] * v for k, v in criteria.items()) / sum(weights.values())


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _inline_proposal_files(
    round_path: Path, data: dict[str, Any]
) -> tuple[list[tuple[str, Loc]], list[Problem]]:
    """Replace proposal file names by their contents; remember where each came from."""
    entries = data.get("proposals")
    if not isinstance(entries, list):
        return [], []
    inlined: list[Any] = []
    origins: list[tuple[str, Loc]] = []
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            inlined.append(entry)
            origins.append((str(round_path), ("proposals", i)))
            continue
        file = round_path.parent / entry
        if not file.is_file():
            problems.append(
                Problem(
                    str(round_path),
                    json_path(("proposals", i)),
                    f"proposal file '{entry}' not found (looked for {file}); check the path, "
                    "which is relative to the round file",
                )
            )
            continue
        try:
            content = read_json(file, str(file))
        except InputError as exc:
            problems += exc.problems
            continue
        items = content if isinstance(content, list) else [content]
        for j, item in enumerate(items):
            inlined.append(item)
            origins.append((str(file), (j,) if isinstance(content, list) else ()))
    data["proposals"] = inlined
    return origins, problems


def _locate(shown: str, origins: list[tuple[str, Loc]], loc: Loc, message: str) -> Problem:
    """Point a location in the merged round back at the file it came from."""
    if len(loc) >= 2 and loc[0] == "proposals" and isinstance(loc[1], int) and loc[1] < len(origins):
        file, prefix = origins[loc[1]]
        return Problem(file, json_path((*prefix, *loc[2:])), message)
    return Problem(shown, json_path(loc), message)


def _message(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "required field is missing"
        if tuple(err["loc"])[-1:] == ("score",) and tuple(err["loc"])[:1] == ("proposals",):
            return f"{msg}; give a score, or reviews (their mean becomes the score)"
    hint = _HINTS.get(err["type"])
    got = err.get("input")
    if err["type"] != "missing" and isinstance(got, int | float | str) and len(str(got)) < 40:
        msg += f" (got {json.dumps(got)})"
    return f"{msg}; {hint}" if hint else msg


def canonical_json(model: BaseModel) -> str:
    """Sorted keys, compact separators: the form that is hashed and embedded."""
    return json.dumps(
        model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def sha256_of(model: BaseModel) -> str:
    """The sha256 of a model's canonical JSON."""
    return hashlib.sha256(canonical_json(model).encode("utf-8")).hexdigest()


def check_writable(path: str | Path, inputs: tuple[str | Path, ...] = ()) -> None:
    """Raise ``InputError`` unless an output file can be written at path, and path is none of
    the input files (which are never modified). Commands call it before any long work."""
    path = Path(path)
    real = Path(os.path.realpath(path))  # through a symbolic link: the file it points to
    folder = real.parent
    problem = None
    if path.is_dir():
        problem = "it is a folder; give a file name"
    elif _special(real):
        if not os.access(real, os.W_OK):
            problem = "it is a device or pipe this user cannot write to; write elsewhere"
    elif not folder.is_dir():
        problem = f"its folder {folder} does not exist; create it or write elsewhere"
    elif not os.access(folder, os.W_OK):
        problem = f"its folder {folder} is not writable; write elsewhere"
    elif any(Path(i).exists() and path.exists() and path.samefile(i) for i in inputs):
        problem = "it is an input of this command, and input files are never overwritten; write elsewhere"
    if problem is not None:
        raise InputError([Problem(str(path), "", f"cannot write the output here: {problem}")])


def check_folder(path: str | Path, solutions: set[str]) -> None:
    """Raise ``InputError`` unless an output folder can be made or used at path for a set of
    solution files: it must not be a file, must be writable, and must hold no other solution
    files (an earlier run's would be read as this run's). Nothing is deleted."""
    path = Path(path)
    problem = None
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if path.exists() and not path.is_dir():
        problem = "it is a file, not a folder; give a folder name"
    elif not os.access(existing, os.W_OK):
        problem = f"{existing} is not writable; write elsewhere"
    elif path.is_dir():
        stale = sorted(f.name for f in path.glob("*.solution.json") if f.name not in solutions)
        if stale:
            problem = (
                f"it holds {len(stale)} solution file(s) of an earlier run ({', '.join(stale[:3])}"
                f"{', ...' if len(stale) > 3 else ''}), which would be mixed with this run's; "
                "give another folder or remove them"
            )
    if problem is not None:
        raise InputError([Problem(str(path), "", f"cannot write the output here: {problem}")])


def round_files(path: str | Path) -> tuple[Path, ...]:
    """The round file and the proposal files it names (those it can be read to name): the
    inputs an output must not overwrite."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (path,)
    entries = data.get("proposals") if isinstance(data, dict) else None
    named = [path.parent / e for e in entries if isinstance(e, str)] if isinstance(entries, list) else []
    return (path, *named)


def _special(path: Path) -> bool:
    """A device, pipe or socket (such as /dev/null): written through, never replaced."""
    return path.exists() and not path.is_file() and not path.is_dir()


def write_atomic(path: str | Path, text: str) -> None:
    """Write text to path via a temporary file and a rename: all or nothing. Through a symbolic
    link the file it points to is replaced (the link stays); a device or pipe is written to."""
    check_writable(path)
    path = Path(os.path.realpath(path))
    if _special(path):
        with open(path, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp makes the file private; an output file gets the usual permissions instead.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
