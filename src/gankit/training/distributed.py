"""Data-parallel training under torchrun: one process per device, gradients averaged.

`torchrun --nproc-per-node N -m gankit train RECIPE` starts N processes; each reads its place
from torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and joins
PyTorch's process group: gloo on the CPU, nccl on CUDA GPUs (each process on cuda:LOCAL_RANK).
Without those variables, or with WORLD_SIZE=1, `Distributed` is a no-op object and training is
the plain single-process loop.

Why gradients are averaged by an optimizer hook and the models are NOT wrapped in
torch.nn.parallel.DistributedDataParallel: DDP all-reduces from autograd hooks during
`backward()`, and two things every GAN toolkit does break it. (1) Double backward:
`torch.autograd.grad(..., create_graph=True)` (WGAN-GP, R1, DRAGAN) is not supported by DDP's
reducer. (2) A player frozen during the other player's step: GANMethod calls
`D.requires_grad_(False)` in the generator step, so D's parameters get no gradient in a backward
pass that still runs through D, which DDP's reducer reports as an error (or needs
find_unused_parameters and its extra traversal). Instead, the Trainer registers a step pre-hook
(`optimizer.register_step_pre_hook`) on every optimizer of `method.optimizers()`: right before
a player's optimizer steps, the gradients of exactly that optimizer's parameters are flattened,
all-reduced in one call and divided by the world size. That is the same arithmetic as DDP (the
mean over processes of each process's gradient of its mean loss = the gradient of the mean loss
over the global batch), it works for any number of players and any penalty, and the methods
need no change. It gives up DDP's overlap of communication with backward, which matters little
for GAN-sized models.

The global batch is sharded, not re-sampled: every process draws the SAME global batch of
`schedule.batch_size` rows (all processes share the data stream's seed and state, and the
latent noise stream's) and keeps rows [rank * b, (rank + 1) * b), b = batch_size / world_size
(`ShardedData`, `Noise.shard`, `Trick.shard`). So the data order and the noise are the ones a
single process would draw, their states in a checkpoint are global, and a run can resume with
another number of processes. With a per-sample-mean loss and no batch statistics (no BatchNorm,
feature matching, minibatch features), a run on N processes therefore computes the same updates
as one process with the same global batch, up to float rounding. Random draws from the global
RNGs (gradient-penalty interpolation coefficients, DRAGAN perturbations, dropout) are seeded per
process with (seed, rank): they match a single-process run only in distribution.

Buffers: BatchNorm normalizes with each process's own batch (per-rank statistics) unless
`distributed.sync_batchnorm` converts it to SyncBatchNorm (CUDA only: PyTorch has no CPU
SyncBatchNorm). Running statistics are only read in eval mode (samples, diversity, evaluation,
checkpoints), so instead of broadcasting rank 0's buffers before every forward pass as DDP does
(broadcast_buffers=True), the Trainer broadcasts them at every logging step. Rank 0's buffers
evolve exactly as under DDP (a broadcast from rank 0 never changes rank 0), and it is rank 0
that writes samples and checkpoints; the other ranks' copies differ only between two logging
steps, where training-mode BatchNorm does not read them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from gankit.errors import ConfigError, GankitError
from gankit.methods.base import Noise
from gankit.methods.critic import Critic
from gankit.schema import RunConfig
from gankit.training.checkpoint import flatten_state
from gankit.training.rng import mix_seed
from gankit.tricks import Trick

RANK_SALT = 1_000_000  # per-rank global seeds: mix_seed(seed, RANK_SALT + rank)

# Test-only hook: GANKIT_TEST_DUMP_RANK_STATE=DIR makes every process write its final modules
# and optimizer states to DIR/rank_R.safetensors at the end of `fit`, so the tests can check
# that all ranks hold identical parameters. Never set it for real runs.
DUMP_ENV = "GANKIT_TEST_DUMP_RANK_STATE"


def mirrored(exc: BaseException) -> BaseException:
    """Mark an error that rank 0 reports too: the CLI prints it once, on rank 0."""
    exc.mirrored = True
    return exc


class Distributed:
    """This process's place in a torchrun job, and the few collectives training needs.

    Every method is a no-op (or the identity) when world_size is 1.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.backend: str | None = None
        self.device: torch.device | None = None
        self._owns_group = False  # this object created the process group (and destroys it)

    def __repr__(self) -> str:
        return (
            f"Distributed(rank={self.rank}, world_size={self.world_size}, "
            f"local_rank={self.local_rank}, backend={self.backend})"
        )

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Distributed:
        """From torchrun's WORLD_SIZE, RANK and LOCAL_RANK; no-op without them."""
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env:
            return cls()
        try:
            world = int(env["WORLD_SIZE"])
            rank = int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise GankitError(
                "WORLD_SIZE, RANK and LOCAL_RANK must be integers (torchrun sets them); got "
                f"{env.get('WORLD_SIZE')!r}, {env.get('RANK')!r}, {env.get('LOCAL_RANK')!r}"
            ) from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise GankitError(
                f"WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local}: not a valid place in a "
                "torchrun job (need 0 <= RANK < WORLD_SIZE)"
            )
        if world == 1:
            return cls()
        return cls(rank, world, local)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- setup ------------------------------------------------------------------------------
    def plan(self, cfg: RunConfig) -> tuple[torch.device, str]:
        """(device, backend) for this process; a ConfigError for anything that cannot work,
        before the process group is joined. Only for world_size > 1."""
        world = self.world_size
        batch = cfg.schedule.batch_size
        if batch % world:
            lower, upper = batch // world * world, -(-batch // world) * world
            hint = f"{lower} or {upper}" if lower else f"{upper}"
            raise ConfigError(
                f"schedule.batch_size: {batch} is the global batch and must split evenly among "
                f"the {world} processes (each trains on batch_size / {world}); use a multiple "
                f"of {world}, e.g. {hint}"
            )
        name = cfg.device
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name.startswith("cuda:"):
            raise ConfigError(
                f"device: {cfg.device!r}: under torchrun every process uses cuda:LOCAL_RANK; set "
                "device to cuda or auto (choose the GPUs with CUDA_VISIBLE_DEVICES)"
            )
        if name not in ("cpu", "cuda"):
            raise ConfigError(
                f"device: {cfg.device!r}: distributed training runs on cpu (gloo) or cuda "
                "(nccl); use device=cpu, cuda or auto"
            )
        if name == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError(
                    "device: 'cuda' asked for, but this machine has no CUDA GPU; use device=cpu "
                    "(or auto)"
                )
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise ConfigError(
                    f"LOCAL_RANK {self.local_rank}: this machine has {count} CUDA GPU(s); start "
                    f"at most {count} processes per node (torchrun --nproc-per-node {count})"
                )
            device = torch.device("cuda", self.local_rank)
        else:
            device = torch.device("cpu")
        backend = cfg.distributed.backend
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl" and device.type != "cuda":
            raise ConfigError(
                "distributed.backend: nccl needs CUDA GPUs, but this run trains on the cpu "
                f"(device: {cfg.device}); use distributed.backend=gloo or auto"
            )
        if cfg.distributed.sync_batchnorm and device.type != "cuda":
            raise ConfigError(
                "distributed.sync_batchnorm: SyncBatchNorm runs only on CUDA GPUs (PyTorch has "
                "no CPU implementation), and this run trains on the cpu; set "
                "distributed.sync_batchnorm=false (BatchNorm then uses each process's own batch)"
            )
        return device, backend

    def setup(self, cfg: RunConfig) -> torch.device:
        """Check the recipe, choose this process's device and join the process group."""
        device, backend = self.plan(cfg)
        self.device, self.backend = device, backend
        if dist.is_initialized():  # the caller's script joined already: use its group
            if dist.get_world_size() != self.world_size or dist.get_rank() != self.rank:
                raise GankitError(
                    f"a process group of {dist.get_world_size()} processes is initialized, but "
                    f"WORLD_SIZE is {self.world_size}"
                )
            self.backend = dist.get_backend()
            return device
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(
                backend=backend, init_method="env://", rank=self.rank, world_size=self.world_size
            )
        except (RuntimeError, ValueError, OSError) as exc:
            where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
            raise GankitError(
                f"cannot join the process group of {self.world_size} processes "
                f"({backend} via {where}): {str(exc).strip().splitlines()[0]}. Start gankit with "
                "torchrun; on several machines check --nnodes, --node-rank and --rdzv-endpoint "
                "HOST:PORT, and that every node reaches HOST:PORT"
            ) from None
        self._owns_group = True
        return device

    def destroy(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self._owns_group = False

    def rank_seed(self, seed: int) -> int:
        """The global-RNG seed of this process: `seed` itself in a single process."""
        return mix_seed(seed, RANK_SALT + self.rank) if self.enabled else seed

    # -- collectives ------------------------------------------------------------------------
    def average_gradients(self, params) -> None:
        """Replace each gradient by its mean over processes: one all_reduce per call (per
        device and dtype of the gradients). Parameters without a gradient are skipped; which
        ones have one is decided by the code path, the same on every process."""
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        for group in _by_kind(grads):
            flat = _flatten_dense_tensors(group)
            dist.all_reduce(flat)
            flat.div_(self.world_size)
            for g, synced in zip(group, _unflatten_dense_tensors(flat, group)):
                g.copy_(synced)

    def install_gradient_averaging(self, optimizers) -> list:
        """A step pre-hook on each optimizer that averages its parameters' gradients over the
        processes right before it steps. Returns the hook handles."""
        if not self.enabled:
            return []

        def hook(optimizer, args, kwargs):
            self.average_gradients(p for g in optimizer.param_groups for p in g["params"])

        return [opt.register_step_pre_hook(hook) for opt in optimizers]

    @torch.no_grad()
    def broadcast_tensors(self, tensors: list[Tensor]) -> None:
        """Copy rank 0's values into these tensors on every process (one call per kind)."""
        if not self.enabled:
            return
        for group in _by_kind(tensors):
            flat = _flatten_dense_tensors(group)
            dist.broadcast(flat, src=0)
            for t, synced in zip(group, _unflatten_dense_tensors(flat, group)):
                t.copy_(synced)

    def broadcast_module(self, module: nn.Module, buffers_only: bool = False) -> None:
        """Rank 0's parameters (unless buffers_only) and buffers on every process."""
        tensors = [] if buffers_only else list(module.parameters())
        self.broadcast_tensors(tensors + list(module.buffers()))

    def all_reduce_mean(self, tensor: Tensor) -> Tensor:
        """The mean over processes of a floating tensor (in place; returned)."""
        if self.enabled:
            dist.all_reduce(tensor)
            tensor.div_(self.world_size)
        return tensor

    def barrier(self) -> None:
        if not self.enabled or not dist.is_initialized():
            return
        if self.backend == "nccl" and self.device is not None:
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def gather_objects(self, obj) -> list | None:
        """Every process's `obj`, in rank order, on rank 0; None on the others."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast_object(self, obj):
        """Rank 0's `obj` on every process (picklable objects)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn):
        """fn() on rank 0 only; its result reaches every process, and so does its error (the
        others raise it marked as mirrored: rank 0 reports it). Also a barrier."""
        if not self.enabled:
            return fn()
        outcome = None
        if self.is_main:
            try:
                outcome = ("ok", fn())
            except (GankitError, OSError) as exc:
                outcome = ("error", exc)
        outcome = self.broadcast_object(outcome)
        if outcome[0] == "error":
            raise outcome[1] if self.is_main else mirrored(outcome[1])
        return outcome[1]

    def failing(self, flags: dict[str, Tensor]) -> list[str]:
        """Names of the 0-d bool flags that are False on any process (one host sync)."""
        if not flags:
            return []
        ok = self.all_reduce_mean(torch.stack([f.float() for f in flags.values()]))
        return [name for name, good in zip(flags, ok.tolist()) if good != 1.0]


def _by_kind(tensors: list[Tensor]) -> list[list[Tensor]]:
    groups: dict[tuple, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    return list(groups.values())


def shard_method_streams(method, rank: int, world: int) -> int:
    """Make every per-sample random stream of a method draw global batches and keep this
    rank's rows: its latent `Noise` objects and its tricks (instance noise, random label
    smoothing targets), also those attached to its critics. Looks at the method's attributes
    and lists; returns how many."""

    streams: dict[int, object] = {}
    for value in list(vars(method).values()):
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            found = item.tricks if isinstance(item, Critic) else [item]
            for stream in found:
                if isinstance(stream, (Noise, Trick)):
                    streams[id(stream)] = stream
    for stream in streams.values():
        stream.shard(rank, world)
    return len(streams)


def convert_sync_batchnorm(method) -> None:
    """BatchNorm -> SyncBatchNorm in every module of the method, in place (the parameters
    stay the same objects, so the optimizers need no change)."""
    for name, module in method.modules().items():
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        if converted is not module:  # a bare BatchNorm as a whole player: not a GAN model
            raise ConfigError(f"distributed.sync_batchnorm: cannot convert the {name} in place")


def dump_rank_state(dist_: Distributed, state_dict) -> Path | None:
    """Test-only (DUMP_ENV): write the modules and optimizer states of `state_dict()` to
    DIR/rank_R.safetensors."""
    folder = os.environ.get(DUMP_ENV)
    if not folder:
        return None

    state = state_dict()
    _, tensors = flatten_state({k: state[k] for k in ("modules", "optimizers")})
    path = Path(folder) / f"rank_{dist_.rank}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def wait_for_sibling_workers(timeout: float = 30.0, poll: float = 0.05) -> bool:
    """Under torchrun, block until the other workers torchrun started on this machine have
    exited (are gone or zombies), at most `timeout` seconds; True when they all did.

    Why: torchrun SIGTERMs the remaining workers as soon as one exits non-zero. Rank 0 carries
    a stopped run's exit code (143 for SIGTERM) and the other ranks exit 0, but a rank that is
    still tearing down its interpreter when rank 0 exits would be killed and reported as a
    second failure. So rank 0 exits last. Workers are found as the processes sharing this
    process's parent (torchrun's agent) in /proc; elsewhere (no /proc, not under torchrun)
    this returns at once."""

    if "TORCHELASTIC_RUN_ID" not in os.environ or not Path("/proc/self/stat").exists():
        return True
    me, parent = os.getpid(), os.getppid()
    deadline = time.monotonic() + timeout
    while True:
        if not [pid for pid in _live_children(parent) if pid != me]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def _live_children(parent: int) -> list[int]:
    """The pids of `parent`'s children that have not exited (zombies excluded), from /proc."""
    live = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) >= 2 and int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            live.append(int(entry.name))
    return live
