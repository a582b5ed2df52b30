"""`dvao train` under hostile inputs and faults (the families of test_hostile.py): no code
from a run folder, reward functions that misbehave, a full disk, checkpoints with the wrong
content, an --out that would write over an input. Each is one line naming the file or option,
exit 2, nothing partial."""

from __future__ import annotations

import errno
import textwrap
from pathlib import Path

import polars as pl
import pytest
import torch

TINY = ("--sft-steps", "0", "--prompts-per-step", "4", "--group-size", "4", "--width", "32")

REWARDS = textwrap.dedent(
    """
    import pathlib, sys

    pathlib.Path(__file__).with_name("imported.marker").write_text("ran")


    def fine(prompts, completions, **kwargs):
        return [0.5 for _ in completions]


    def quits(prompts, completions, **kwargs):
        sys.exit(3)


    def strings(prompts, completions, **kwargs):
        return ["1.0" for _ in completions]


    def raw_bytes(prompts, completions, **kwargs):
        return [b"1" for _ in completions]


    def numpy_floats(prompts, completions, **kwargs):
        import numpy as np
        return list(np.ones(len(completions), dtype=np.float32))
    """
)


@pytest.fixture
def rewards(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    path = folder / "shipped.py"
    path.write_text(REWARDS)
    return path


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert "Traceback" not in text
    return lines[-1]


# ---- family 8: no code from data ---------------------------------------------------------------


def test_resume_never_imports_reward_code_named_only_in_the_run_folder(
    cli, tmp_path: Path, rewards: Path
) -> None:
    run = tmp_path / "run"
    spec = f"{rewards}:fine"
    assert cli("train", "--out", run, *TINY, "--steps", "1", "--reward", spec).code == 0
    marker = rewards.with_name("imported.marker")
    marker.unlink()
    # someone hands you the run folder: its config.json names code; resuming must not run it
    res = cli("train", "--resume", run, "--steps", "2")
    assert res.code == 2
    assert _last_line(res.err) == (
        f"error: --resume {run}: the run used reward code that dvao does not import from a run "
        f"folder; name it again to resume: --reward {spec}"
    )
    assert not marker.exists()
    # other specs than the run's: refused, nothing imported
    res = cli("train", "--resume", run, "--steps", "2", "--reward", f"{rewards}:strings")
    assert res.code == 2 and "the --reward options differ from the run's" in res.err
    assert not marker.exists()
    # a run without rewards takes no --reward on resume
    plain = tmp_path / "plain"
    assert cli("train", "--out", plain, *TINY, "--steps", "1").code == 0
    res = cli("train", "--resume", plain, "--steps", "2", "--reward", spec)
    assert (res.code, _last_line(res.err)) == (
        2,
        f"error: --resume {plain}: the run has no --reward; do not pass one",
    )
    assert not marker.exists()
    # named again by the user: it runs
    res = cli("train", "--resume", run, "--steps", "2", "--reward", spec)
    assert res.code == 0, res.err
    assert marker.exists()
    assert pl.read_parquet(run / "metrics.parquet")["step"].to_list() == [1, 2]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("quits", "raised SystemExit: 3"),
        ("strings", "returned a non-number at index 0: '1.0'"),
        ("raw_bytes", "returned a non-number at index 0: b'1'"),
    ],
)
def test_reward_that_exits_or_returns_text_stops_the_run(
    cli, tmp_path: Path, rewards: Path, function: str, message: str
) -> None:
    spec = f"{rewards}:{function}"
    out = tmp_path / "run"
    res = cli("train", "--out", out, *TINY, "--steps", "2", "--reward", spec)
    assert res.code == 2
    assert _last_line(res.err) == f"error: --reward '{spec}' {message}"
    assert not (out / "rollouts").exists() or not list((out / "rollouts").iterdir())


def test_reward_may_return_numpy_numbers(cli, tmp_path: Path, rewards: Path) -> None:
    res = cli(
        "train",
        "--out",
        tmp_path / "r",
        *TINY,
        "--steps",
        "1",
        "--reward",
        f"{rewards}:numpy_floats",
    )
    assert res.code == 0, res.err


# ---- family 7: the OS's errors -----------------------------------------------------------------


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*.tmp")]


def test_disk_full_is_one_line_naming_the_path(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dvao_cli.train.outputs as outputs

    real = outputs.write_parquet
    calls = {"n": 0}

    def full_after_some_bytes(frame: pl.DataFrame, target: Path) -> None:
        calls["n"] += 1
        if calls["n"] < 3:  # the first step's rollouts and metrics go through
            return real(frame, target)
        from dvao_cli.io import atomic_path

        with atomic_path(target) as tmp:
            tmp.write_bytes(b"PAR1 half a file")  # the disk fills up mid-write
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "write_parquet", full_after_some_bytes)
    out = tmp_path / "run"
    res = cli("train", "--out", out, *TINY, "--steps", "3")
    assert res.code == 2
    part = out / "rollouts" / "step-000002.parquet"
    assert _last_line(res.err) == f"error: {part}: disk full"
    assert not part.exists() and _no_temp_files(out)  # no partial file
    assert (out / "rollouts" / "step-000001.parquet").is_file()


@pytest.mark.parametrize("wrapped", [False, True])
def test_disk_full_while_saving_a_checkpoint(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wrapped: bool
) -> None:
    real = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        if self.name.startswith(".step-000002.pt"):
            real(self, bytes(data)[:100])
            if wrapped:  # how a library may report it
                raise RuntimeError("file write failed: No space left on device (os error 28)")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    out = tmp_path / "run"
    res = cli("train", "--out", out, *TINY, "--steps", "3", "--checkpoint-every", "2")
    assert res.code == 2
    ckpt = out / "checkpoints" / "step-000002.pt"
    assert _last_line(res.err) == f"error: {ckpt}: disk full"
    assert not ckpt.exists() and _no_temp_files(out)
    assert (out / "checkpoints" / "step-000000.pt").is_file()


def test_out_that_cannot_be_a_run_directory(cli, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    res = cli("train", "--out", a_file, *TINY, "--steps", "1")
    assert (res.code, _last_line(res.err)) == (
        2,
        f"error: --out {a_file} is a file; --out names a run directory",
    )
    assert a_file.read_text() == "keep me"


def test_read_only_destination(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.mkdir
    target = tmp_path / "ro" / "run"

    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        if self == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", read_only)  # root writes anywhere: simulate the mode
    res = cli("train", "--out", target, *TINY, "--steps", "1")
    assert (res.code, _last_line(res.err)) == (
        2,
        f"error: {target}: cannot write: Permission denied",
    )


@pytest.mark.parametrize(
    ("spoil", "detail"),
    [
        (lambda s: s.pop("ref"), "KeyError: missing 'ref'"),
        (lambda s: s["model"].pop("tok.weight"), "Missing key(s) in state_dict"),
        (
            lambda s: s["model"].__setitem__("tok.weight", torch.zeros(3, 3)),
            "size mismatch for tok.weight",
        ),
        (lambda s: s.__setitem__("python_rng", [1, 2]), "ValueError"),
        (lambda s: s.__setitem__("model", torch.zeros(2)), "state_dict"),
    ],
)
def test_checkpoint_with_the_wrong_content(cli, tmp_path: Path, spoil, detail: str) -> None:
    run = tmp_path / "run"
    assert cli("train", "--out", run, *TINY, "--steps", "2", "--checkpoint-every", "1").code == 0
    path = run / "checkpoints" / "step-000002.pt"
    state = torch.load(path, weights_only=True)
    spoil(state)
    torch.save(state, path)
    res = cli("train", "--resume", run, "--steps", "3")
    assert res.code == 2, res.err
    line = _last_line(res.err)
    assert line.startswith(f"error: {path}: checkpoint does not match this run (")
    assert detail in line
    # not a dict at all
    torch.save([1, 2, 3], path)
    res = cli("train", "--resume", run, "--steps", "3")
    assert res.code == 2
    assert _last_line(res.err).startswith(f"error: {path}: checkpoint does not match this run")


# ---- family 1: an input is never overwritten ---------------------------------------------------


def test_out_that_would_write_over_a_reward_file(cli, tmp_path: Path) -> None:
    # a --reward file that lies where the run writes or removes files (io.check_outputs)
    run = tmp_path / "run"
    (run / "rollouts").mkdir(parents=True)
    inside = run / "rollouts" / "step-000001.py"
    inside.write_text("def r(prompts, completions, **kw):\n    return [1.0] * len(completions)\n")
    before = inside.read_bytes()
    res = cli("train", "--out", run, *TINY, "--steps", "1", "--reward", f"{inside}:r")
    assert res.code == 2
    assert _last_line(res.err) == (
        f"error: {run / 'rollouts'}: --out would replace a folder holding an input ({inside}); "
        "write elsewhere"
    )
    assert inside.read_bytes() == before and not (run / "config.json").exists()
    # a comparison also replaces every run folder it names
    cmp = tmp_path / "cmp"
    (cmp / "dvao-s0").mkdir(parents=True)
    shipped = cmp / "dvao-s0" / "r.py"
    shipped.write_bytes(before)
    res = cli(
        "train",
        "--out",
        cmp,
        *TINY,
        "--steps",
        "1",
        "--compare",
        "dvao",
        "--seeds",
        "1",
        "--reward",
        f"{shipped}:r",
    )
    assert res.code == 2 and f"would replace a folder holding an input ({shipped})" in res.err
    assert shipped.read_bytes() == before and not (cmp / "config.json").exists()
    # beside the run (not where it writes): fine
    beside = tmp_path / "beside"
    beside.mkdir()
    (beside / "r.py").write_bytes(before)
    res = cli("train", "--out", beside, *TINY, "--steps", "1", "--reward", f"{beside / 'r.py'}:r")
    assert res.code == 0, res.err
    assert (beside / "r.py").read_bytes() == before
