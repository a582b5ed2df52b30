"""ms-swift (`--log_completions true`): `<output_dir>/completions.jsonl`.

ONE line per logging step, holding columns as lists: `{"step": ["12", ...] (strings),
"prompt": [...], "completion": [...], "<RewardName>": [...], "advantages": [...]}` plus other
logged columns (`solution`, `entropy`, ...). Megatron-swift writes `gen_step` (integers)
instead of `step`. Groups are runs of consecutive rows with the same prompt within a step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dvao_cli.errors import InputError
from dvao_cli.importers.batch import FLOAT, INT, MIXED, NULL, Batch, Trainer
from dvao_cli.importers.detect import SWIFT_FILE
from dvao_cli.importers.stream import parse_json_line
from dvao_cli.importers.values import parse_int, step_problem

FILE_NAME = SWIFT_FILE

TRAINER = Trainer(
    name="swift",
    label="ms-swift",
    grouping="runs",
    completion_key="completion",
    advantage_key="advantages",
    not_rewards=frozenset(
        {
            "step",
            "gen_step",
            "prompt",
            "completion",
            "advantages",
            "messages",
            "entropy",
            "image",
            "images",
            "solution",
            "num_turns",
            "trajectory_ids",
            "rollout_infos",
            "request_id",
        }
    ),
    text_keys=frozenset({"solution", "messages", "image", "images"}),
    objective_kinds=(FLOAT, INT, MIXED, NULL),
    lists=True,
)


def first_line_is_columnar(path: Path) -> bool | None:
    """True when the first non-blank line is an object of lists (ms-swift), None if no line."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    try:
                        record = json.loads(line)
                    except (ValueError, RecursionError):  # malformed, huge or deep: not ours
                        return False
                    return (
                        isinstance(record, dict)
                        and bool(record)
                        and all(isinstance(v, list) for v in record.values())
                    )
    except (OSError, UnicodeDecodeError):
        return False
    return None


def parse_batch(path: Path, number: int, line: str) -> Batch:
    record = parse_json_line(path, number, line)
    if not isinstance(record, dict) or not record:
        raise InputError(
            "expected a JSON object of columns (an ms-swift completions line)",
            path=path,
            line=number,
        )
    scalar = next((k for k, v in record.items() if not isinstance(v, list)), None)
    if scalar is not None:
        raise InputError(
            "not an ms-swift completions line: its values must be lists (one per column); "
            "a verl rollout file holds one response per line",
            path=path,
            line=number,
            column=scalar,
        )
    step_key = "step" if "step" in record else "gen_step" if "gen_step" in record else None
    if step_key is None:
        raise InputError("no 'step' (or 'gen_step') list", path=path, line=number)
    prompt_key = "prompt" if "prompt" in record else "messages" if "messages" in record else None
    if prompt_key is None:
        raise InputError("no 'prompt' list", path=path, line=number, column="prompt")
    n = len(record[step_key])
    for key, values in record.items():
        if len(values) != n:
            raise InputError(
                f"holds {len(values)} values but '{step_key}' holds {n}",
                path=path,
                line=number,
                column=key,
            )
    steps: list[int] = []
    for i, value in enumerate(record[step_key]):
        step = parse_int(value)
        if step is None:
            raise InputError(
                f"{step_problem(value)} (row {i + 1})",
                path=path,
                line=number,
                column=step_key,
            )
        steps.append(step)
    prompts: list[Any] = record[prompt_key]
    columns = {
        k: v for k, v in record.items() if k not in (step_key, prompt_key, "step", "gen_step")
    }
    return Batch(path=path, step=steps, prompt=prompts, columns=columns, line=number)


def batches(
    path: Path, skipped: dict[str, int], advance: Callable[[int], None] | None = None
) -> Iterator[Batch]:
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if advance is not None:
                    advance(len(line))
                if not line.strip():
                    skipped["blank lines"] = skipped.get("blank lines", 0) + 1
                    continue
                yield parse_batch(path, number, line)
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason})", path=path) from None
