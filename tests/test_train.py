"""Training: schedule, config, the loop, exact resume (signals, kill -9), errors, DDP, plots."""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from codekiln import checkpoint as ckpt  # noqa: E402
from codekiln.cli import main  # noqa: E402
from codekiln.train import ConfigError, TrainConfig, cosine_lr, load_config_file, lr_at, train  # noqa: E402
from codekiln.train.cli import config_from_argv  # noqa: E402
from codekiln.train.loop import TrainingError  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from train_helpers import (  # noqa: E402
    cli_args,
    env,
    interrupt,
    make_packed,
    run_cli,
    small_config,
    start_train,
    train_losses,
    val_losses,
    wait_for_step,
)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return make_packed(tmp_path_factory.mktemp("packed") / "data")


def run(packed: pathlib.Path, out: pathlib.Path, **kw):
    return train(TrainConfig(**small_config(packed, out, **kw)))


# ------------------------------------------------------------------------------ schedule


def test_lr_schedule_shape() -> None:
    cfg = TrainConfig(data_dir="d", max_steps=100, warmup_steps=10, learning_rate=1.0, min_lr=0.1)
    assert lr_at(0, cfg) == pytest.approx(1 / 11)
    assert lr_at(9, cfg) == pytest.approx(10 / 11)
    assert lr_at(10, cfg) == pytest.approx(1.0)  # peak right after warmup
    assert lr_at(55, cfg) == pytest.approx(0.55)  # cosine midpoint: halfway to the floor
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(10_000, cfg) == pytest.approx(0.1)
    # decay_steps ends the decay early; min_lr defaults to a tenth of the peak
    cfg2 = TrainConfig(data_dir="d", max_steps=100, warmup_steps=0, decay_steps=50)
    assert lr_at(50, cfg2) == pytest.approx(1e-4) and lr_at(80, cfg2) == pytest.approx(1e-4)


@settings(max_examples=200, deadline=None)
@given(
    warmup=st.integers(0, 50),
    decay=st.integers(1, 500),
    peak=st.floats(1e-5, 1.0),
    floor_frac=st.floats(0.0, 1.0),
)
def test_lr_schedule_properties(warmup: int, decay: int, peak: float, floor_frac: float) -> None:
    floor = peak * floor_frac
    rates = [
        cosine_lr(s, learning_rate=peak, min_lr=floor, warmup_steps=warmup, decay_steps=decay)
        for s in range(max(warmup, decay) + 5)
    ]
    assert all(0 < r <= peak * (1 + 1e-12) or (r == floor == 0) for r in rates)
    warm = rates[:warmup]
    assert warm == sorted(warm)  # rising during warmup
    after = rates[warmup:]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(after))  # never rising afterwards
    assert rates[-1] == pytest.approx(floor) or warmup >= decay


# ------------------------------------------------------------------------------ config


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="micro_batch_size"):
        TrainConfig(micro_batch_size=0)
    with pytest.raises(ConfigError, match="min_lr"):
        TrainConfig(learning_rate=1e-3, min_lr=1e-2)
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_steps"):
        TrainConfig(max_steps=None, max_tokens=None)
    with pytest.raises(ConfigError, match=r"unknown setting.*bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="loggers"):
        TrainConfig(loggers=["mlflow"])


def test_config_file_and_flags(tmp_path: pathlib.Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text(
        "[train]\nmax-steps = 7\nlearning_rate = 0.01\nmodel_overrides = { n_layer = 3 }\n"
    )
    assert load_config_file(toml) == {
        "max_steps": 7,
        "learning_rate": 0.01,
        "model_overrides": {"n_layer": 3},
    }
    js = tmp_path / "run.json"
    js.write_text(json.dumps({"max_steps": 9, "seed": 3}))
    assert load_config_file(js) == {"max_steps": 9, "seed": 3}
    # flags override the file; overrides merge
    cfg = config_from_argv(
        [
            "--config",
            str(toml),
            "--data",
            "d",
            "--learning-rate",
            "0.5",
            "--model-override",
            "dropout=0.1",
        ]
    )
    assert (cfg.max_steps, cfg.learning_rate, cfg.data_dir) == (7, 0.5, "d")
    assert cfg.model_overrides == {"n_layer": 3, "dropout": 0.1}
    bad = tmp_path / "bad.toml"
    bad.write_text("max_steps = [")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_config_file(bad)


def test_every_config_field_has_a_flag() -> None:
    import dataclasses

    from codekiln.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()  # type: ignore[union-attr]
    for f in dataclasses.fields(TrainConfig):
        flag = {
            "data_dir": "--data",
            "out_dir": "--out",
            "model_overrides": "--model-override",
        }.get(f.name, "--" + f.name.replace("_", "-"))
        assert flag in text, flag


# ------------------------------------------------------------------------------ the loop


def test_train_learns_and_writes_the_run_dir(packed: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    res = run(packed, out, max_steps=24, eval_every=8, checkpoint_every=8, keep_last=2)
    assert res.step == 24 and not res.interrupted
    assert res.final_val_loss < res.initial_val_loss - 0.5
    assert res.initial_val_loss == pytest.approx(math.log(512), abs=0.5)  # ~uniform at start
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 0 and "val_loss" in records[0]  # validation before training
    trains = [r for r in records if "train_loss" in r]
    assert [r["step"] for r in trains] == list(range(1, 25))
    assert {"lr", "tokens_per_s", "tokens"} <= set(trains[0])
    vals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in vals] == [0, 8, 16, 24]
    assert all(r["val_ppl"] == pytest.approx(math.exp(r["val_loss"])) for r in vals)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["max_steps"] == 24 and cfg["model"]["n_layer"] == 2
    assert cfg["model"]["vocab_size"] == 512  # the tokenizer's, rounded up to 64
    names = sorted(os.listdir(out / "checkpoints"))
    assert names == ["best.pt", "step-00000016.pt", "step-00000024.pt"]  # keep_last=2 + best
    state = ckpt.load_checkpoint(out / "checkpoints" / "step-00000024.pt")
    assert {"model", "optimizer", "rng", "sampler", "step", "train_config", "model_config"} <= set(
        state
    )
    assert (
        state["tokenizer_fingerprint"]
        == json.loads((packed / "tokenizer.json").read_text())["fingerprint"]
    )
    best = ckpt.load_checkpoint(out / "checkpoints" / "best.pt")
    assert best["val_loss"] == pytest.approx(min(r["val_loss"] for r in vals[1:]))
    model, tok = ckpt.load_model(out, "best")
    assert tok.vocab_size == 512 and not model.training


def test_same_seed_same_run_and_seed_matters(packed: pathlib.Path, tmp_path: pathlib.Path) -> None:
    a = run(packed, tmp_path / "a", max_steps=6, eval_every=3)
    b = run(packed, tmp_path / "b", max_steps=6, eval_every=3)
    run(packed, tmp_path / "c", max_steps=6, eval_every=3, seed=7)
    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b")
    assert train_losses(tmp_path / "a") != train_losses(tmp_path / "c")
    assert a.final_val_loss == b.final_val_loss


def test_gradient_accumulation_matches_a_bigger_batch(
    packed: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    run(packed, tmp_path / "big", max_steps=4, micro_batch_size=8)
    run(packed, tmp_path / "acc", max_steps=4, micro_batch_size=2, grad_accum_steps=4)
    big, acc = train_losses(tmp_path / "big"), train_losses(tmp_path / "acc")
    assert big.keys() == acc.keys()
    for k in big:
        assert acc[k] == pytest.approx(big[k], abs=1e-4)


def test_resume_in_process_is_exact(packed: pathlib.Path, tmp_path: pathlib.Path) -> None:
    run(packed, tmp_path / "full", max_steps=12)
    run(packed, tmp_path / "part", max_steps=6, decay_steps=12)
    res = run(packed, tmp_path / "part", max_steps=12, resume=True)
    assert res.step == 12
    assert train_losses(tmp_path / "part") == train_losses(tmp_path / "full")
    part, full = val_losses(tmp_path / "part"), val_losses(tmp_path / "full")
    assert part.pop(6) > full[12]  # the first run ended with its own final evaluation
    assert part == full


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_resume_is_bit_identical(
    packed: pathlib.Path, tmp_path: pathlib.Path, sig: int
) -> None:
    values = small_config(
        packed,
        tmp_path / "run",
        max_steps=60,
        block_size=64,
        micro_batch_size=8,
        eval_every=20,
        checkpoint_every=50,
    )
    proc = start_train(values)
    wait_for_step(proc, tmp_path / "run", 5)
    rc, err = interrupt(proc, sig)
    assert rc == 130, err
    assert "interrupted at step" in err and "--resume" in err
    stopped = max(train_losses(tmp_path / "run"))
    assert stopped < 60
    assert ckpt.list_checkpoints(tmp_path / "run")[-1][0] == stopped  # saved at the stop
    done = run_cli({**values, "resume": True})
    assert done.returncode == 0, done.stderr
    # the reference runs like the interrupted one: a process with the same thread count
    ref = run_cli({**values, "out_dir": str(tmp_path / "ref")})
    assert ref.returncode == 0, ref.stderr
    assert train_losses(tmp_path / "run") == train_losses(tmp_path / "ref")
    assert val_losses(tmp_path / "run") == val_losses(tmp_path / "ref")


def test_kill_9_then_resume_is_bit_identical(packed: pathlib.Path, tmp_path: pathlib.Path) -> None:
    values = small_config(
        packed,
        tmp_path / "run",
        max_steps=40,
        block_size=64,
        micro_batch_size=8,
        eval_every=10,
        checkpoint_every=5,
    )
    proc = start_train(values)
    wait_for_step(proc, tmp_path / "run", 12)
    proc.kill()
    proc.communicate()  # reap it and close its pipes
    assert ckpt.list_checkpoints(tmp_path / "run")
    done = run_cli({**values, "resume": True})
    assert done.returncode == 0, done.stderr
    ref = run_cli({**values, "out_dir": str(tmp_path / "ref")})
    assert ref.returncode == 0, ref.stderr
    assert train_losses(tmp_path / "run") == train_losses(tmp_path / "ref")


def test_kill_9_during_a_checkpoint_write_keeps_the_previous(
    packed: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    values = small_config(packed, tmp_path / "run", max_steps=12, eval_every=0, checkpoint_every=4)
    # torch.save writes half of the 2nd checkpoint, then the process is killed with SIGKILL.
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        import codekiln.checkpoint as ck
        from codekiln.train import TrainConfig, train
        real_save = torch.save
        calls = []
        def dying_save(obj, path, *a, **k):
            calls.append(path)
            if len(calls) == 2:
                real_save(obj, path, *a, **k)
                size = os.path.getsize(path)
                with open(path, "r+b") as f:
                    f.truncate(size // 2)
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, path, *a, **k)
        torch.save = dying_save
        train(TrainConfig(**{values!r}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=env(), capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    found = ckpt.list_checkpoints(tmp_path / "run")
    assert [s for s, _ in found] == [4]  # the half-written step 8 never replaced anything
    assert ckpt.load_checkpoint(found[0][1])["step"] == 4
    res = train(TrainConfig(**{**values, "resume": True}))
    assert res.step == 12


def test_nonfinite_loss_stops_or_skips(
    packed: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codekiln.model import GPT

    real_forward = GPT.forward
    calls = {"n": 0}

    def forward(self, idx, targets=None, cache=None):
        logits, loss = real_forward(self, idx, targets, cache)
        if self.training and targets is not None:
            calls["n"] += 1
            if calls["n"] == 3:
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)
    with pytest.raises(TrainingError, match=r"non-finite loss .* at step 3"):
        run(packed, tmp_path / "stop", max_steps=6, eval_every=0)
    assert not ckpt.list_checkpoints(tmp_path / "stop")  # nothing corrupt was saved
    calls["n"] = 0
    res = run(packed, tmp_path / "skip", max_steps=6, eval_every=0, on_nonfinite="skip")
    assert res.skipped_steps == 1 and res.step == 6
    state = ckpt.load_checkpoint(ckpt.resolve_checkpoint(tmp_path / "skip", "last"))
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_init_from_starts_from_weights_with_fresh_optimizer(
    packed: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    base = run(packed, tmp_path / "base", max_steps=8)
    ft = run(packed, tmp_path / "ft", max_steps=2, init_from=str(tmp_path / "base"), eval_every=1)
    vals = val_losses(tmp_path / "ft")
    assert vals[0] == pytest.approx(base.best_val_loss, abs=1e-6)  # starts where base was best
    state = ckpt.load_checkpoint(ckpt.resolve_checkpoint(tmp_path / "ft", "last"))
    assert state["step"] == 2
    assert ft.step == 2


# ------------------------------------------------------------------------------ errors


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["train", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("codekiln: error:"), err
    assert "Traceback" not in err
    return err


def test_clear_errors(
    packed: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = cli_args(small_config(packed, tmp_path / "run", max_steps=2))
    assert "no such directory" in _error(
        ["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x")], capsys
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "split 'train'" in _error(["--data", str(empty), "--out", str(tmp_path / "x")], capsys)
    assert "no split 'test'" in _error([*base, "--valid-split", "test"], capsys)
    assert "--resume: no checkpoint" in _error([*base, "--resume"], capsys)
    err = _error([*base, "--model-override", "vocab_size=100"], capsys)
    assert "512" in err and "vocab_size" in err
    err = _error([*base, "--block-size", "4096"], capsys)
    assert "block_size=4096" in err and "model's" in err
    other = tmp_path / "other.json"
    from codekiln.quickstart import stdlib_files
    from codekiln.tokenizer import Tokenizer

    Tokenizer.train(stdlib_files()[:5], vocab_size=300, progress=False).save(other)
    assert "fingerprint" in _error([*base, "--tokenizer", str(other)], capsys)
    assert "unknown preset" in _error([*base, "--model", "huge"], capsys)
    # a finished run: not silently overwritten; resume with other settings names them
    assert main(["train", *base]) == 0
    capsys.readouterr()
    assert "--resume" in _error(base, capsys)
    err = _error([*base, "--resume", "--learning-rate", "0.1", "--seed", "5"], capsys)
    assert "learning_rate" in err and "seed" in err
    # a corrupt checkpoint
    last = ckpt.resolve_checkpoint(tmp_path / "run", "last")
    with open(last, "r+b") as f:
        f.truncate(100)
    assert "corrupt or truncated" in _error([*base, "--resume", "--max-steps", "3"], capsys)


# ------------------------------------------------------------------------------ distributed


def _torchrun(nproc: int, values: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "codekiln",
            "train",
            *cli_args(values),
        ],
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_torchrun_two_processes_match_one(
    packed: pathlib.Path, tmp_path: pathlib.Path, strategy: str
) -> None:
    common = dict(max_steps=6, eval_every=3, checkpoint_every=3, strategy=strategy)
    two = _torchrun(2, small_config(packed, tmp_path / "two", micro_batch_size=2, **common))
    assert two.returncode == 0, two.stderr[-3000:]
    run(packed, tmp_path / "one", micro_batch_size=2, grad_accum_steps=2, **common)
    a, b = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert a.keys() == b.keys() == set(range(1, 7))
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=1e-4)
    va, vb = val_losses(tmp_path / "one"), val_losses(tmp_path / "two")
    for k in va:
        assert vb[k] == pytest.approx(va[k], abs=1e-4)
    # only rank 0 wrote: one metrics line per step and eval
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 6 + 3
    # resume the 2-process run on 1 process (same global batch): it continues exactly
    res = run(
        packed,
        tmp_path / "two",
        micro_batch_size=4,
        max_steps=9,
        decay_steps=6,
        resume=True,
        **{k: v for k, v in common.items() if k != "max_steps"},
    )
    run(
        packed,
        tmp_path / "ref",
        micro_batch_size=4,
        max_steps=9,
        decay_steps=6,
        **{k: v for k, v in common.items() if k != "max_steps"},
    )
    assert res.step == 9
    tail_a = {k: v for k, v in train_losses(tmp_path / "two").items() if k > 6}
    tail_b = {k: v for k, v in train_losses(tmp_path / "ref").items() if k > 6}
    assert tail_a.keys() == tail_b.keys() == {7, 8, 9}
    for k in tail_a:
        assert tail_a[k] == pytest.approx(tail_b[k], abs=1e-3)


# ------------------------------------------------------------------------------ plots


def test_plot_writes_a_png(
    packed: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    run(packed, tmp_path / "a", max_steps=4, eval_every=2)
    run(packed, tmp_path / "b", max_steps=4, eval_every=2, seed=3)
    assert (
        main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "p.png")])
        == 0
    )
    data = (tmp_path / "p.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert main(["plot", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "loss.png").exists()
    assert main(["plot", str(tmp_path)]) == 1
    assert "metrics.jsonl" in capsys.readouterr().err


# ------------------------------------------------------------------------------ loggers


def test_wandb_logger_gets_the_metrics(
    packed: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in wandb module (the real one would need an account and the network).
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "wandb.py").write_text(
        textwrap.dedent(
            """
            calls = []
            class Run:
                def log(self, data, step):
                    calls.append(("log", step, dict(data)))
                def finish(self):
                    calls.append(("finish",))
            def init(**kw):
                calls.append(("init", kw))
                return Run()
            """
        )
    )
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    run(packed, tmp_path / "run", max_steps=4, eval_every=2, loggers=["wandb"], wandb_project="p")
    import wandb

    assert wandb.calls[0][0] == "init" and wandb.calls[0][1]["project"] == "p"
    logged = [c for c in wandb.calls if c[0] == "log"]
    assert {c[1] for c in logged} == {0, 1, 2, 3, 4}
    assert any("val_loss" in c[2] for c in logged) and any("train_loss" in c[2] for c in logged)
    assert wandb.calls[-1] == ("finish",)


def test_tensorboard_logger_writes_events_or_says_what_is_missing(
    packed: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="tensorboard package"):
            run(packed, tmp_path / "run", max_steps=2, loggers=["tensorboard"])
        assert not ckpt.list_checkpoints(tmp_path / "run")  # refused before training
        return
    run(packed, tmp_path / "run", max_steps=2, loggers=["tensorboard"])
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_training_runs_through_epochs_and_resumes_across_them(tmp_path: pathlib.Path) -> None:
    from codekiln.data import PackedDataset

    packed = make_packed(tmp_path / "data", files=12, vocab_size=300)  # a few epochs' worth
    blocks = len(PackedDataset(packed, "train", block_size=128))
    micro = -(-blocks // 6)  # an epoch is about 6 steps
    kw = dict(
        block_size=128, micro_batch_size=micro, eval_every=0, checkpoint_every=5, warmup_steps=2
    )
    full = run(packed, tmp_path / "full", max_steps=14, **kw)
    assert full.step == 14 and full.tokens == 14 * micro * 128  # more than two epochs
    run(packed, tmp_path / "part", max_steps=7, decay_steps=14, **kw)
    run(packed, tmp_path / "part", max_steps=14, resume=True, **kw)
    assert train_losses(tmp_path / "part") == train_losses(tmp_path / "full")
    state = ckpt.load_checkpoint(ckpt.resolve_checkpoint(tmp_path / "full", "last"))
    assert state["sampler"]["epoch"] >= 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_bf16_with_prefetch_and_resume(
    packed: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    kw = dict(device="cuda", max_steps=8, eval_every=4, checkpoint_every=4)
    res = run(packed, tmp_path / "gpu", **kw)
    assert res.final_val_loss < res.initial_val_loss
    cfg = json.loads((tmp_path / "gpu" / "config.json").read_text())
    assert cfg["train"]["precision"] in ("bf16", "fp16")
    # resuming on the GPU continues the same run (bf16 math: within float tolerance)
    run(packed, tmp_path / "part", device="cuda", max_steps=4, decay_steps=8, eval_every=4)
    run(packed, tmp_path / "part", resume=True, **kw)
    a, b = train_losses(tmp_path / "gpu"), train_losses(tmp_path / "part")
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=2e-2)
    # the checkpoint loads on the CPU
    model, _ = ckpt.load_model(tmp_path / "gpu", "last", device="cpu")
    assert next(model.parameters()).device.type == "cpu"
