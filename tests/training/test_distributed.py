"""Data-parallel training under torchrun: 2 CPU processes with gloo.

The end-to-end tests start `python -m torch.distributed.run --nproc-per-node 2 -m gankit train`
(the same as `torchrun`), with the test-only hook GANKIT_TEST_DUMP_RANK_STATE making every rank
write its final parameters, buffers and optimizer states. They check that:
- all ranks end with identical states (also with BatchNorm per rank, EMA, a gradient penalty's
  double backward and instance noise);
- without batch statistics, the 2-process run equals a 1-process run with the same global batch
  up to float rounding (the gradient-averaging math);
- a 2-process run stopped and resumed under torchrun equals an uninterrupted one exactly, and a
  resume with one process continues the same data and noise streams.
The sharding wrappers and the configuration errors are checked in-process.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import gankit
from gankit.cli import main as cli_main
from gankit.config import load_recipe
from gankit.data.base import InMemoryData, SampledData
from gankit.data.sharded import ShardedData
from gankit.errors import ConfigError, GankitError
from gankit.methods.base import Noise
from gankit.training.checkpoint import flatten_state, load_checkpoint
from gankit.training.distributed import DUMP_ENV, Distributed
from gankit.tricks import build_tricks

N = 12  # steps of the half run; the full runs train 2 N
TINY = [
    "generator.hidden=16",
    "generator.depth=1",
    "discriminator.hidden=16",
    "discriminator.depth=1",
    "schedule.batch_size=32",
    "logging.every=6",
    "logging.checkpoint_every=1000",
    "logging.sample_every=1000",
    "logging.progress=false",
    "logging.tensorboard=false",
]
# no batch statistics and a per-sample-mean loss: the math says 2 processes = 1 process (the
# EMA and the instance noise, drawn for the global batch, keep it so)
PLAIN_SET = [
    *TINY,
    "generator.batch_norm=false",
    "ema.enabled=true",
    "tricks=[{name: instance_noise, std: 0.1, anneal_steps: 1000}]",  # not tied to steps
]
PLAIN = ["ring8", "--set", *PLAIN_SET]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(dump: Path | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", DUMP_ENV):
        env.pop(key, None)
    if dump is not None:
        env[DUMP_ENV] = str(dump)
    return env


def torchrun(args: list[str], dump: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "gankit",
        "train",
        *args,
    ]
    proc = subprocess.run(cmd, env=_env(dump), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def rank_states(dump: Path) -> list[dict[str, torch.Tensor]]:
    return [load_file(str(dump / f"rank_{r}.safetensors")) for r in (0, 1)]


def checkpoint_tensors(path: Path) -> dict[str, torch.Tensor]:
    state, _ = load_checkpoint(path)
    return flatten_state({k: state[k] for k in ("modules", "optimizers")})[1]


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.fixture(scope="module")
def plain_runs(tmp_path_factory):
    """2-process runs of PLAIN: 2N steps straight, and N steps then --resume to 2N."""
    root = tmp_path_factory.mktemp("ddp")
    full = torchrun(
        [*PLAIN, f"schedule.steps={2 * N}", "--out", str(root / "full")], root / "dump_full"
    )
    torchrun([*PLAIN, f"schedule.steps={N}", "--out", str(root / "half")])
    shutil.copytree(root / "half", root / "half_copy")  # resumed by one process below
    resumed = torchrun(
        ["--resume", str(root / "half"), "--set", f"schedule.steps={2 * N}"], root / "dump_resumed"
    )
    return SimpleNamespace(root=root, full=full, resumed=resumed)


def test_ranks_hold_identical_state_and_only_rank_0_writes(plain_runs):
    root = plain_runs.root
    r0, r1 = rank_states(root / "dump_full")
    assert_identical(r0, r1)
    # rank 0's checkpoint is what every rank holds
    assert_identical(checkpoint_tensors(gankit.open_run(root / "full").checkpoints()[-1]), r0)
    out = plain_runs.full.stdout
    assert out.count("gankit 0") == 1 and out.count("Finished 24 steps.") == 1, out
    assert "2 processes (gloo, cpu)" in out
    lines = gankit.open_run(root / "full").metrics()
    assert [m["step"] for m in lines] == [6, 12, 18, 24]  # one line per log step, not per rank


def test_two_processes_match_one_process_with_the_same_global_batch(plain_runs, tmp_path):
    single = gankit.train(
        "ring8",
        [*PLAIN_SET, f"schedule.steps={2 * N}"],
        out=tmp_path / "single",
    )
    one = checkpoint_tensors(single.checkpoints()[-1])
    two, _ = rank_states(plain_runs.root / "dump_full")
    assert one.keys() == two.keys()
    for key in one:
        assert torch.allclose(one[key], two[key], rtol=0, atol=1e-5), key
    # and the logged losses are the means over the global batch
    for a, b in zip(single.metrics(), gankit.open_run(plain_runs.root / "full").metrics()):
        assert a["step"] == b["step"]
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


def test_resume_under_torchrun_equals_an_uninterrupted_run(plain_runs):
    root = plain_runs.root
    full, resumed = rank_states(root / "dump_full"), rank_states(root / "dump_resumed")
    for rank in (0, 1):
        assert_identical(full[rank], resumed[rank])
    a, _ = load_checkpoint(gankit.open_run(root / "full").checkpoints()[-1])
    b, _ = load_checkpoint(gankit.open_run(root / "half").checkpoints()[-1])
    assert len(b["rng_by_rank"]) == 2 and b["trainer"]["world_size"] == 2
    for rank in (0, 1):  # each rank's global RNG continued from its own saved state
        assert torch.equal(a["rng_by_rank"][rank]["torch"], b["rng_by_rank"][rank]["torch"])
    losses = [
        [(m["step"], m["d_loss"], m["g_loss"]) for m in gankit.open_run(p).metrics()]
        for p in (root / "full", root / "half")
    ]
    assert losses[0] == losses[1]


def test_resume_with_another_number_of_processes_continues_the_streams(plain_runs, caplog):
    """The half run written by 2 processes, resumed by 1: data order and noise are global."""
    run = gankit.resume(plain_runs.root / "half_copy", {"schedule.steps": 2 * N})
    assert run.result["step"] == 2 * N
    assert "written by 2 process(es), this run has 1" in caplog.text
    a, _ = load_checkpoint(gankit.open_run(plain_runs.root / "full").checkpoints()[-1])
    b, _ = load_checkpoint(run.checkpoints()[-1])
    assert torch.equal(a["data"]["generator"], b["data"]["generator"])
    assert torch.equal(a["method"]["noise"]["generator"], b["method"]["noise"]["generator"])
    for key, value in flatten_state(a["modules"])[1].items():
        assert torch.allclose(value, flatten_state(b["modules"])[1][key], rtol=0, atol=1e-5)


def test_ranks_stay_identical_with_batchnorm_and_a_gradient_penalty(tmp_path):
    """Per-rank BatchNorm in G (buffers broadcast from rank 0, also into the EMA copy) and
    WGAN-GP's double backward (which DistributedDataParallel does not support), 2 critic
    steps per generator step, D frozen in G's step."""
    args = [
        "ring8-wgan-gp",
        "--set",
        *TINY,
        "schedule.steps=8",
        "schedule.n_critic=2",
        "ema.enabled=true",
        "--out",
        str(tmp_path / "run"),
    ]
    torchrun(args, tmp_path / "dump")
    r0, r1 = rank_states(tmp_path / "dump")
    assert any("running_mean" in key for key in r0) and any("generator_ema" in k for k in r0)
    assert_identical(r0, r1)
    run = gankit.open_run(tmp_path / "run")
    assert_identical(checkpoint_tensors(run.checkpoints()[-1]), r0)
    penalties = [m["reg/GradientPenalty"] for m in run.metrics() if "event" not in m]
    assert len(penalties) == 2 and all(p > 0 for p in penalties)


@pytest.mark.parametrize(
    "preset, extra",
    [
        ("ring8-mrgan", []),  # three optimizers: G, D and the encoder
        ("ring8-madgan", ["method_options.k=2"]),  # k generators, a (k + 1)-way D
        ("ring8-unrolled", ["method_options.unroll_steps=2"]),  # D unrolled inside G's step
    ],
    ids=["mrgan", "madgan", "unrolled"],
)
def test_methods_with_extra_players_stay_identical_across_ranks(tmp_path, preset, extra):
    """The optimizer-hook gradient averaging needs nothing from a method: every player of
    these methods ends bit-identical on both ranks, and rank 0's checkpoint holds it."""
    args = [preset, "--set", *TINY, *extra, "schedule.steps=4", "--out", str(tmp_path / "run")]
    torchrun(args, tmp_path / "dump")
    r0, r1 = rank_states(tmp_path / "dump")
    assert_identical(r0, r1)
    run = gankit.open_run(tmp_path / "run")
    assert_identical(checkpoint_tensors(run.checkpoints()[-1]), r0)
    assert all(math.isfinite(m["g_loss"]) for m in run.metrics() if "event" not in m)


# -- configuration errors (the checks run before the process group is joined) ----------------
def _torchrun_env(monkeypatch, rank: int, world: int = 2) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.delenv("MASTER_ADDR", raising=False)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "schedule.batch_size=33",
            "schedule.batch_size: 33 is the global batch and must split evenly among the 2 "
            "processes",
        ),
        (
            "distributed.sync_batchnorm=true",
            "distributed.sync_batchnorm: SyncBatchNorm runs only on CUDA GPUs",
        ),
    ],
    ids=["batch-not-divisible", "sync-batchnorm-on-cpu"],
)
def test_cli_errors_before_training_printed_by_rank_0_only(
    tmp_path, monkeypatch, capsys, override, message
):
    argv = ["train", "ring8", "--set", override, "device=cpu", "--out", str(tmp_path / "run")]
    _torchrun_env(monkeypatch, rank=0)
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gankit: error: {message}"), err
    _torchrun_env(monkeypatch, rank=1)
    assert cli_main(argv) == 2
    assert capsys.readouterr().err == ""  # rank 0 says it
    assert not (tmp_path / "run").exists()


def test_plan_checks_backend_and_device():
    place = Distributed(rank=1, world_size=2, local_rank=1)
    cfg = load_recipe("ring8", {"device": "cpu"})
    assert place.plan(cfg) == (torch.device("cpu"), "gloo")
    with pytest.raises(ConfigError, match="nccl needs CUDA GPUs"):
        place.plan(load_recipe("ring8", {"device": "cpu", "distributed.backend": "nccl"}))
    with pytest.raises(ConfigError, match="every process uses cuda:LOCAL_RANK"):
        place.plan(load_recipe("ring8", {"device": "cuda:1"}))
    with pytest.raises(ConfigError, match="use a multiple of 4, e.g. 96 or 100"):
        Distributed(0, 4, 0).plan(load_recipe("ring8", {"schedule.batch_size": 98}))


def test_cannot_join_the_process_group_is_a_clear_error(tmp_path, monkeypatch, capsys):
    _torchrun_env(monkeypatch, rank=1)
    argv = ["train", "ring8", "--set", "device=cpu", "--out", str(tmp_path / "run")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit: error: rank 1: cannot join the process group of 2 processes")
    assert "MASTER_ADDR" in err and "torchrun" in err


def test_from_env():
    assert not Distributed.from_env({}).enabled
    assert not Distributed.from_env({"WORLD_SIZE": "1", "RANK": "0"}).enabled
    place = Distributed.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (place.rank, place.world_size, place.local_rank, place.is_main) == (3, 4, 1, False)
    with pytest.raises(GankitError, match="must be integers"):
        Distributed.from_env({"WORLD_SIZE": "two"})
    with pytest.raises(GankitError, match="not a valid place"):
        Distributed.from_env({"WORLD_SIZE": "2", "RANK": "2"})


# -- sharding against a naive computation ----------------------------------------------------
def test_sharded_in_memory_data_returns_each_ranks_rows_of_the_global_batch():
    x, labels = torch.randn(10, 3), torch.arange(10) % 4
    world = 3
    naive = InMemoryData(x, labels, seed=5)
    shards = [ShardedData(InMemoryData(x, labels, seed=5), r, world) for r in range(world)]
    for _ in range(5):  # 5 batches of 6 cross epoch boundaries (10 samples)
        gx, gy = naive.batch(6)
        for r, shard in enumerate(shards):
            sx, sy = shard.batch(6)
            assert torch.equal(sx, gx[2 * r : 2 * r + 2]) and torch.equal(sy, gy[2 * r : 2 * r + 2])
    # the state is the global stream's: it round-trips, and a reseed applies to the stream
    assert all(s.state_dict() == naive.state_dict() for s in shards)
    other = ShardedData(InMemoryData(x, labels, seed=5), 1, world)
    other.load_state_dict(shards[1].state_dict())
    assert torch.equal(other.batch(6)[0], shards[1].batch(6)[0])
    naive.reseed(7)
    shards[2].reseed(7)
    assert torch.equal(shards[2].batch(6)[0], naive.batch(6)[0][4:6])
    assert (shards[0].shape, shards[0].num_classes, len(shards[0])) == ((3,), 4, 10)
    assert torch.equal(shards[0].reference(4), x[:4])
    with pytest.raises(ConfigError, match="cannot be split evenly among 3 processes"):
        shards[0].batch(7)


def test_sharded_sampled_data_and_noise_match_the_global_draw():
    def sampler(n, g):
        return torch.randn(n, 2, generator=g), None

    naive, shard = (
        SampledData(sampler, (2,), seed=3),
        ShardedData(SampledData(sampler, (2,), seed=3), 1, 2),
    )
    for _ in range(3):
        x, _ = naive.batch(8)
        sx, sy = shard.batch(8)
        assert torch.equal(sx, x[4:8]) and sy is None
    assert torch.equal(shard.state_dict()["generator"], naive.state_dict()["generator"])

    for dist in ("normal", "uniform"):
        full, part = (
            Noise(5, dist, 11, torch.device("cpu")),
            Noise(5, dist, 11, torch.device("cpu")),
        )
        part.shard(2, 4)
        for _ in range(3):
            assert torch.equal(part(8), full(8)[4:6])
        assert torch.equal(part.state_dict()["generator"], full.state_dict()["generator"])
        with pytest.raises(ConfigError, match="cannot be split evenly among 4 processes"):
            part(6)


def test_instance_noise_is_drawn_for_the_global_batch():
    cfg = load_recipe("ring8", {"tricks": [{"name": "instance_noise", "std": 1.0}]})
    host = SimpleNamespace(cfg=cfg, device=torch.device("cpu"))
    (full,) = build_tricks(cfg)
    shards = [build_tricks(cfg)[0] for _ in range(2)]
    for trick in (full, *shards):
        trick.attach(host)
    for r, trick in enumerate(shards):
        trick.shard(r, 2)
    x = torch.zeros(6, 2)
    for step in range(3):
        noisy = full.perturb(x, step)
        for r, trick in enumerate(shards):
            assert torch.equal(trick.perturb(x[3 * r : 3 * r + 3], step), noisy[3 * r : 3 * r + 3])


def _rank_pids(parent: int, timeout: float = 120.0) -> dict[int, int]:
    """RANK -> pid of the torchrun workers under `parent`, read from /proc (Linux)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                environ = (entry / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            ranks = [e for e in environ if e.startswith(b"RANK=")]
            if ppid == parent and ranks:
                found[int(ranks[0][5:])] = int(entry.name)
        if len(found) == 2:
            return found
        time.sleep(0.2)
    raise AssertionError("the two torchrun workers did not appear")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_sigterm_to_one_rank_stops_both_at_the_same_step_and_both_name_sigterm(tmp_path):
    """A scheduler may signal a single worker: the vote carries which signal, so every rank
    checkpoints at the same step and reports SIGTERM (rank 0 exits 143), not a guessed SIGINT."""
    import signal
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "gankit", "train", *PLAIN, "schedule.steps=100000", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        pids = _rank_pids(proc.pid)
        deadline = time.monotonic() + 120
        metrics = out / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        os.kill(pids[1], signal.SIGTERM)  # rank 1 only; rank 0 learns of it from the vote
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # rank 0 wrote run.json before the closing barrier, so it is final whatever torchrun does
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["signal"] == "SIGTERM", info
    step = info["step"]
    assert step % 6 == 0 and 0 < step < 100000  # agreed at a logging step (logging.every=6)
    assert f"step_{step:08d}" in [p.name for p in gankit.open_run(out).checkpoints()]
    # only rank 0 exits 143 (the other ranks exit 0), so torchrun never SIGTERMs rank 0
    # before it has printed its summary
    root = output.split("Root Cause", 1)[-1]
    assert "rank      : 0 (local_rank: 0)\n  exitcode  : 143" in root, output[-3000:]
    assert "exitcode  : -15" not in output, output[-3000:]
    assert "Interrupted (SIGTERM) at step" in output, output[-3000:]
    assert "continue:    gankit train --resume" in output, output[-3000:]


_SIBLINGS = """
import os, subprocess, sys
from pathlib import Path
out, mode = Path(sys.argv[1]), sys.argv[2]
slow = subprocess.Popen([sys.executable, "-c",
    "import sys, time; from pathlib import Path; time.sleep(float(sys.argv[2])); "
    "Path(sys.argv[1]).write_text('done')", str(out / "slow_done"),
    "1.5" if mode == "wait" else "20"])
waiter = subprocess.Popen([sys.executable, "-c",
    "import sys; from pathlib import Path; "
    "from gankit.training.distributed import wait_for_sibling_workers as w; "
    "ok = w(timeout=float(sys.argv[2])); "
    "Path(sys.argv[1]).write_text(f'{ok} {Path(sys.argv[1]).with_name(\\"slow_done\\").exists()}')",
    str(out / "waiter"), "60" if mode == "wait" else "0.5"],
    env={**os.environ, "TORCHELASTIC_RUN_ID": "test"})
waiter.wait()
slow.kill()
slow.wait()
"""


@pytest.mark.parametrize("mode, expected", [("wait", "True True"), ("timeout", "False False")])
def test_rank_0_waits_for_its_sibling_workers_to_exit(tmp_path, mode, expected):
    """Rank 0 exits last so torchrun never SIGTERMs a worker still exiting: the waiter returns
    only after its sibling (same parent, as torchrun's workers are) has exited, and gives up
    after its timeout."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc to find sibling processes")
    script = tmp_path / "parent.py"
    script.write_text(_SIBLINGS)
    subprocess.run([sys.executable, str(script), str(tmp_path), mode], check=True, timeout=120)
    assert (tmp_path / "waiter").read_text() == expected


def test_waiting_for_siblings_is_a_no_op_outside_torchrun(monkeypatch):
    from gankit.training.distributed import wait_for_sibling_workers

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert wait_for_sibling_workers(timeout=0.0) is True  # pytest's siblings do not count
