"""verl (`trainer.rollout_data_dir=DIR`): `DIR/<global_step>.jsonl`, one JSON object per response.

Keys: `input` (the prompt text), `output` (the response), `gts` (ground truth, newer versions),
`score`, `step`, and every extra key the reward function returned (`acc`, `format_reward`,
`pred`, ...). Values that JSON cannot hold natively may be written as strings. There is no uid
and no advantage, and batch balancing reorders the rows, so groups are rebuilt from
(`step`, `input`) wherever the rows are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dvao_cli.errors import InputError
from dvao_cli.importers.batch import BOOL, FLOAT, INT, MIXED, NULL, Batch, Trainer
from dvao_cli.importers.detect import VERL_FILE
from dvao_cli.importers.stream import parse_json_line
from dvao_cli.importers.values import add_record, parse_int, step_problem

FILE_RE = VERL_FILE

TRAINER = Trainer(
    name="verl",
    label="verl",
    grouping="key",
    completion_key="output",
    advantage_key=None,
    not_rewards=frozenset(
        {
            "step",
            "input",
            "output",
            "gts",
            "pred",
            "data_source",
            "ground_truth",
            "uid",
            "index",
            "extra_info",
            "reward_model",
            "request_id",
        }
    ),
    text_keys=frozenset({"input", "output", "gts", "pred", "data_source", "ground_truth"}),
    objective_kinds=(FLOAT, INT, BOOL, MIXED, NULL),
    prompt_key="input",
    group_key="uid",  # verl's v1 trainer writes it: the true group (batch balancing reorders)
)


def step_of(path: Path) -> int | None:
    match = FILE_RE.match(path.name)
    return parse_int(match.group(1)) if match else None  # None past int64


def read_batch(path: Path) -> tuple[Batch, int]:
    """One `<step>.jsonl` file and the number of blank lines skipped."""
    name_step = step_of(path)
    columns: dict[str, list[Any]] = {}
    steps: list[int] = []
    prompts: list[Any] = []
    lines: list[int] = []
    blank = 0
    with open(path, encoding="utf-8", errors="strict") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    blank += 1
                    continue
                record = parse_json_line(path, number, line)
                if not isinstance(record, dict):
                    raise InputError(
                        "expected one JSON object per line (a verl rollout record)",
                        path=path,
                        line=number,
                    )
                if record and all(isinstance(v, list) for v in record.values()):
                    raise InputError(
                        "its values are lists: this looks like an ms-swift completions.jsonl "
                        "line, not a verl rollout record",
                        path=path,
                        line=number,
                    )
                if "input" not in record:
                    raise InputError(
                        "not a verl rollout record: no 'input' key (another trainer's table of "
                        "rollouts: name its columns with --step COL --group COL)",
                        path=path,
                        line=number,
                    )
                row = len(steps)
                raw_step = record.get("step")
                step = name_step if raw_step is None else parse_int(raw_step)
                if step is None:
                    raise InputError(
                        step_problem(raw_step)
                        if raw_step is not None
                        else "no 'step' key and no step in the file name (<step>.jsonl)",
                        path=path,
                        line=number,
                        column="step",
                    )
                steps.append(step)
                prompts.append(record["input"])
                lines.append(number)
                add_record(columns, row, record, skip=("input", "step"))
        except UnicodeDecodeError as err:
            raise InputError(f"not UTF-8 text ({err.reason})", path=path) from None
    return Batch(path=path, step=steps, prompt=prompts, columns=columns, lines=lines), blank


def batches(files: Sequence[Path], skipped: dict[str, int]) -> Iterator[Batch]:
    for path in files:
        batch, blank = read_batch(path)
        if blank:
            skipped["blank lines"] = skipped.get("blank lines", 0) + blank
        yield batch
