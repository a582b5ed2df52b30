"""Group rebuilding: runs of one prompt, keys, or blocks of a fixed size, within a step."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError, counted
from dvao_cli.importers.batch import PROMPT, Batch
from dvao_cli.importers.values import to_text
from dvao_cli.objective_names import did_you_mean
from dvao_cli.reader.format import STEP
from dvao_cli.reader.plausible import GroupStats

if TYPE_CHECKING:
    import numpy as np

# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------


@dataclass
class GroupState:
    """Carried across batches: the next group id of each step, the group size in force and the
    groups' sizes per step (`stats`, for `reader.plausible`)."""

    group_size: int | None  # --group-size
    ragged: bool
    keys: tuple[str, ...] = ()  # --group-key (or the trainer's own key): columns, not the prompt
    prompt_key: str = PROMPT  # the trainer's prompt column, a key like any other
    expected: int | None = None  # the size of every group so far (without --ragged)
    expected_from: str = ""
    next_id: dict[int, int] = field(default_factory=dict)
    sizes: Counter[int] = field(default_factory=Counter)
    steps: set[int] = field(default_factory=set)
    groups: int = 0
    stats: GroupStats = field(default_factory=GroupStats)


def _runs(batch: Batch) -> list[list[int]]:
    """Maximal runs of consecutive rows with the same step and prompt."""
    groups: list[list[int]] = []
    step, prompt = batch.step, batch.prompt
    for i in range(batch.rows):
        if i and step[i] == step[i - 1] and prompt[i] == prompt[i - 1]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _key_values(batch: Batch, keys: tuple[str, ...], prompt_key: str) -> list[Any]:
    """Each row's group key within its step: its prompt, or its values of the `keys` columns
    (the prompt column may be one of them). A key column missing, or null for a row, is an
    InputError: those rows would silently form one group."""
    if not keys:
        return batch.prompt
    columns: list[list[Any]] = []
    for key in keys:
        if key == prompt_key:
            columns.append(batch.prompt)
            continue
        values = batch.columns.get(key)
        if values is None:
            raise InputError(
                "no such column for --group-key" + did_you_mean(key, [prompt_key, *batch.columns]),
                column=key,
                **batch.where(),
            )
        values = values if isinstance(values, list) else values.to_pylist()
        if None in values:
            row = values.index(None)
            raise InputError(
                "no value (null) for a response in a group key column: every row needs one "
                "(the rows without one would silently form one group)",
                column=key,
                **batch.where(row),
            )
        columns.append(values)
    if len(columns) == 1:
        return [_hashable(v) for v in columns[0]]
    return [tuple(_hashable(v) for v in row) for row in zip(*columns, strict=True)]


def _by_key(batch: Batch, values: list[Any]) -> list[list[int]]:
    """Rows with the same (step, key value), wherever they are, in order of first appearance."""
    index: dict[tuple[int, Any], list[int]] = {}
    for i, (step, value) in enumerate(zip(batch.step, values, strict=True)):
        key = (step, _hashable(value))
        rows = index.get(key)
        if rows is None:
            index[key] = [i]
        else:
            rows.append(i)
    return list(index.values())


def _blocks(
    batch: Batch, size: int, grouping: str, values: list[Any], column: str
) -> list[list[int]]:
    """Fixed blocks of `size` rows: of each step's rows (runs) or of each key's rows (key)."""
    blocks: list[list[int]] = []
    if grouping == "key":
        for rows in _by_key(batch, values):
            if len(rows) % size:
                step = batch.step[rows[0]]
                what = "a prompt" if column == PROMPT else "a group key"
                raise InputError(
                    f"step {step}: {what} has {counted(len(rows), 'response')}, not a multiple "
                    f"of --group-size {size}",
                    column=column,
                    **batch.where(rows[0]),
                )
            blocks.extend(rows[i : i + size] for i in range(0, len(rows), size))
        return blocks
    start = 0
    while start < batch.rows:  # one pass per contiguous run of a step
        end = start
        while end < batch.rows and batch.step[end] == batch.step[start]:
            end += 1
        if (end - start) % size:
            raise InputError(
                f"step {batch.step[start]} has {counted(end - start, 'row')}, not a multiple of "
                f"--group-size {size}",
                column=STEP,
                **batch.where(start),
            )
        for b in range(start, end, size):
            prompts = {_hashable(batch.prompt[i]) for i in range(b, b + size)}
            if len(prompts) > 1:
                raise InputError(
                    f"step {batch.step[start]}: the block of --group-size {size} rows starting "
                    f"at row {b + 1} holds {len(prompts)} different prompts "
                    "(is the group size right?)",
                    column=PROMPT,
                    **batch.where(b),
                )
            blocks.append(list(range(b, b + size)))
        start = end
    return blocks


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, type(None))) else to_text(value)


def _sizes_text(sizes: Counter[int]) -> str:
    parts = [f"{counted(n, 'group')} of {s}" for s, n in sorted(sizes.items())]
    return ", ".join(parts)


def assign_groups(
    batch: Batch, grouping: str, state: GroupState
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rebuild the groups of one batch: by its prompts (`grouping` "runs" or "key"), or, with
    `state.keys`, by those columns wherever the rows are.

    Returns `order` (N,) the rows sorted by (step, group) with each group in file order, and
    for the sorted rows `step` (N,), `group_id` (N,) and `sample_id` (N,). Group ids count up
    from 0 within a step, in order of first appearance, continuing across batches.
    """
    import numpy as np

    by_prompt = not state.keys or state.prompt_key in state.keys
    if by_prompt and None in batch.prompt:  # a null prompt would join every other in a group
        row = batch.prompt.index(None)
        raise InputError(
            "no prompt (null) for a response: groups are rebuilt from the prompts, so every "
            "row needs one (the rows without one would silently form one group)",
            column=PROMPT,
            **batch.where(row),
        )
    if state.keys:
        grouping = "key"
    values = _key_values(batch, state.keys, state.prompt_key)
    column = PROMPT if not state.keys else ", ".join(state.keys)
    if state.group_size is not None:
        groups = _blocks(batch, state.group_size, grouping, values, column)
    else:
        groups = _runs(batch) if grouping == "runs" else _by_key(batch, values)

    sizes = Counter(len(g) for g in groups)
    if state.group_size is None and not state.ragged:
        expected = state.expected if state.expected is not None else len(groups[0])
        odd = next((g for g in groups if len(g) != expected), None)
        if odd is not None:
            step = batch.step[odd[0]]
            earlier = (
                f"; earlier groups have {counted(expected, 'row')} ({state.expected_from})"
                if state.expected is not None
                else ""
            )
            raise InputError(
                f"step {step}: inconsistent group sizes: {_sizes_text(sizes)}{earlier}. "
                "Pass --group-size N to cut fixed blocks of N rows, or --ragged to keep the "
                "groups as they are",
                **batch.where(odd[0]),
            )
        if state.expected is None:
            state.expected = expected
            state.expected_from = f"{batch.path}" + (f":{batch.line}" if batch.line else "")

    # group ids per step, in order of first appearance (groups are listed in that order)
    keyed: list[tuple[int, int, list[int]]] = []
    for rows in groups:
        step = batch.step[rows[0]]
        gid = state.next_id.get(step, 0)
        state.next_id[step] = gid + 1
        keyed.append((step, gid, rows))
        state.stats.add_group(step, len(rows), batch.path)
    keyed.sort(key=lambda t: (t[0], t[1]))
    state.sizes.update(sizes)
    state.groups += len(groups)
    state.steps.update(t[0] for t in keyed)

    n = batch.rows
    order = np.empty(n, dtype=np.int64)
    steps = np.empty(n, dtype=np.int64)
    gids = np.empty(n, dtype=np.int64)
    samples = np.empty(n, dtype=np.int64)
    at = 0
    for step, gid, rows in keyed:
        k = len(rows)
        order[at : at + k] = rows
        steps[at : at + k] = step
        gids[at : at + k] = gid
        samples[at : at + k] = np.arange(k)
        at += k
    return order, steps, gids, samples
