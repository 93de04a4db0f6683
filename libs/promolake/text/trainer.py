"""Distributed training of the two-tower text model (promolake.text.model): one loop, three engines.

`train(spec, comm)` is the loop, written once against `Comm`, a process group of one or more ranks:
  - every rank takes its own batches from the PairSource (exactly the same number per epoch, so the
    ranks stay in lockstep) and computes the in-batch contrastive loss over its batch;
  - gradients are averaged across ranks (Horovod's DistributedOptimizer, or DDP) once per optimizer
    step, after `grad_accumulation` micro-batches (the loss is divided by it, so the step sees the
    mean gradient of the micro-batches);
  - AdamW (no weight decay on biases and LayerNorm), learning rate = learning_rate x world size,
    linear warm-up over warmup_steps optimizer steps then linear decay to zero at the last step;
  - after each epoch: validation on held-out users (recall/NDCG@k over ALL validation users, the
    users and items split across ranks), a checkpoint written atomically by rank 0, and rank 0's
    metrics logged to an existing MLflow run (step = epoch, 1-based).

`launch(spec, engine, num_proc, spark)` starts the ranks:
  - "horovod": sparkdl.HorovodRunner on a Databricks ML runtime, else horovod.spark.run with Gloo on
    the active SparkSession;
  - "torch_distributor": pyspark.ml.torch.distributor.TorchDistributor (torchrun; gloo on CPU, nccl on
    GPU; DistributedDataParallel);
  - "local": this process, one rank.

Determinism and resuming: each epoch reseeds torch from (seed, epoch, rank), and a PairSource's order
depends only on (rank, world size, epoch), so an epoch replays identically whether or not the run was
interrupted before it. A checkpoint holds the model, optimizer, scheduler and loss-scaler states, the
epoch and the metric history; the RNG state itself need not be stored. checkpoint_dir must be visible
to every rank (one machine, /dbfs or a Unity Catalog volume): each rank reads the checkpoint that
rank 0 chose, then rank 0's state is broadcast.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from promolake.text.model import TwoTower, contrastive_loss

ENGINES = ("horovod", "torch_distributor", "local")
PRECISIONS = ("off", "auto", "bf16", "fp16")
BATCH_KEYS = ("user_ids", "user_mask", "item_ids", "item_mask", "item_key", "pair_id")
_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")
_CHECKPOINT = re.compile(r"^epoch-(\d{4})\.pt$")
_LOG = "[text-train]"


# ----- inputs --------------------------------------------------------------------------------------

class PairSource(Protocol):
    """Training pairs in batches, per rank. Picklable: it is shipped to worker processes (cloudpickle).

    A batch is a dict of long tensors: user_ids, user_mask [B, Lu] (trimmed to the batch's longest
    text), item_ids, item_mask [B, Li], item_key [B] (same item -> same key, to mask false negatives),
    pair_id [B]; optionally neg_ids, neg_mask [B*H, Ln] (hard negatives)."""

    def steps_per_epoch(self, world_size: int) -> int:
        """Batches every rank takes per epoch (the same on every rank)."""
        ...

    def batches(self, rank: int, world_size: int, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """At least steps_per_epoch(world_size) batches of this rank's share, in an order that depends
        only on (rank, world_size, epoch)."""
        ...


@dataclass
class ValidationSet:
    """Held-out users and the catalogue, tokenised, as numpy (picklable; shipped to every rank).

    Row u of user_ids holds user u's token ids, zero-padded, the first user_lengths[u] real; the same
    for items. relevant[u] are the item rows user u bought in the validation window; seen[u] (optional)
    are item rows never recommended to u. Users with no relevant item are not scored."""

    user_ids: np.ndarray
    user_lengths: np.ndarray
    item_ids: np.ndarray
    item_lengths: np.ndarray
    relevant: list[np.ndarray]
    seen: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        for name in ("user_ids", "item_ids"):
            if getattr(self, name).ndim != 2:
                raise ValueError(f"ValidationSet.{name} must be 2-D [rows, length], got {getattr(self, name).shape}")
        if len(self.user_lengths) != len(self.user_ids) or len(self.item_lengths) != len(self.item_ids):
            raise ValueError("ValidationSet: lengths must have one entry per row of user_ids / item_ids")
        if len(self.relevant) != len(self.user_ids):
            raise ValueError(f"ValidationSet.relevant must have one array per user: {len(self.relevant)} != "
                             f"{len(self.user_ids)}")
        if self.seen is not None and len(self.seen) != len(self.user_ids):
            raise ValueError("ValidationSet.seen must have one array per user")
        if len(self.item_ids) == 0:
            raise ValueError("ValidationSet has no items")

    @classmethod
    def from_token_lists(cls, users: Sequence[Sequence[int]], items: Sequence[Sequence[int]],
                         relevant: Sequence[Sequence[int]], seen: Sequence[Sequence[int]] | None = None
                         ) -> "ValidationSet":
        """A ValidationSet from one token-id list per user and per item (padded here)."""
        def padded(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
            lengths = np.array([len(r) for r in rows], dtype=np.int64)
            ids = np.zeros((len(rows), max(1, int(lengths.max(initial=0)))), dtype=np.int64)
            for n, r in enumerate(rows):
                ids[n, :len(r)] = r
            return ids, lengths

        as_arrays = (lambda lists: [np.asarray(x, dtype=np.int64) for x in lists])
        return cls(*padded(users), *padded(items), as_arrays(relevant), None if seen is None else as_arrays(seen))


@dataclass
class TrainSpec:
    """Everything a training run needs; picklable (cloudpickle), shipped to every rank.

    Args:
        model_factory: zero-argument callable returning the initial TwoTower (the same on every rank,
            e.g. functools.partial(build_model, checkpoint, projection_dim, seed)).
        data: the PairSource.
        epochs: passes over the data.
        learning_rate: for one worker; the optimizer uses learning_rate x world size.
        warmup_steps: optimizer steps of linear warm-up, then linear decay to 0.
        weight_decay: AdamW decay (not applied to biases and LayerNorm weights).
        temperature: softmax temperature of the contrastive loss.
        grad_accumulation: micro-batches per optimizer step.
        mixed_precision: "off", "bf16" (autocast; CPU or GPU), "fp16" (autocast + GradScaler; GPU
            only), "auto" (fp16 on GPU, off on CPU).
        use_gpu: one CUDA device per rank (cuda:local_rank).
        seed: seeds each epoch's dropout (with epoch and rank).
        checkpoint_dir: per-epoch checkpoints, resumed from the latest complete one; None: none.
        output_dir: rank 0 saves the final model there (TwoTower.save) when all epochs are done.
        validation: per-epoch validation users and items; None: none.
        k: cut-off of the validation metrics.
        mlflow_tracking_uri, mlflow_run_id: an existing run that rank 0 logs per-epoch metrics to.
        log_every: a progress line from rank 0 every this many optimizer steps; 0: epoch lines only.
        stop_after_epochs: stop cleanly after this many epochs of this invocation (an interrupted run).
        max_grad_norm: clip the averaged gradient to this L2 norm; 0: no clipping.
        eval_batch_size: texts per forward pass in validation.
        keep_checkpoints: newest checkpoints kept in checkpoint_dir.
        tokenizer: checkpoint name whose tokenizer is saved with the output model; None: none.
    """

    model_factory: Callable[[], TwoTower]
    data: PairSource
    epochs: int = 1
    learning_rate: float = 5e-5
    warmup_steps: int = 0
    weight_decay: float = 0.01
    temperature: float = 0.05
    grad_accumulation: int = 1
    mixed_precision: Literal["off", "auto", "bf16", "fp16"] = "off"
    use_gpu: bool = False
    seed: int = 0
    checkpoint_dir: str | None = None
    output_dir: str | None = None
    validation: ValidationSet | None = None
    k: int = 10
    mlflow_tracking_uri: str | None = None
    mlflow_run_id: str | None = None
    log_every: int = 50
    stop_after_epochs: int | None = None
    max_grad_norm: float = 1.0
    eval_batch_size: int = 64
    keep_checkpoints: int = 2
    tokenizer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)   # saved into the output's two_tower.json

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "grad_accumulation": self.grad_accumulation, "k": self.k,
                    "eval_batch_size": self.eval_batch_size, "keep_checkpoints": self.keep_checkpoints}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainSpec.{name} must be a positive int, got {value!r}")
        if not self.learning_rate > 0 or not self.temperature > 0:
            raise ValueError("TrainSpec.learning_rate and TrainSpec.temperature must be > 0")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.max_grad_norm < 0 or self.log_every < 0:
            raise ValueError("TrainSpec.warmup_steps, weight_decay, max_grad_norm and log_every must be >= 0")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"TrainSpec.mixed_precision must be one of {PRECISIONS}, got {self.mixed_precision!r}")
        if self.stop_after_epochs is not None and self.stop_after_epochs < 1:
            raise ValueError(f"TrainSpec.stop_after_epochs must be >= 1 or None, got {self.stop_after_epochs!r}")
        if (self.mlflow_run_id is None) != (self.mlflow_tracking_uri is None):
            raise ValueError("TrainSpec.mlflow_tracking_uri and mlflow_run_id go together")
        if not callable(self.model_factory):
            raise TypeError("TrainSpec.model_factory must be a zero-argument callable returning a TwoTower")


# ----- process groups ----------------------------------------------------------------------------

class Comm:
    """The collective operations the loop needs, for a group of `size` ranks. This base class is the
    group of one (SingleComm); HorovodComm and TorchComm override what differs."""

    name = "local"
    rank, size, local_rank, local_size = 0, 1, 0, 1
    device = torch.device("cpu")   # where collectives run (NCCL needs CUDA tensors)

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The module whose forward/backward the loop calls (DDP for torch)."""
        return model

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module,
                       accumulation: int) -> torch.optim.Optimizer:
        """The optimizer whose step applies gradients averaged over ranks."""
        return optimizer

    def broadcast_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Make every rank's model and optimizer state rank 0's."""

    def accumulating(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Context for a backward pass whose gradients must stay local (not the last micro-batch)."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def averaged_gradients(self, optimizer: torch.optim.Optimizer) -> Iterator[None]:
        """Inside, .grad holds the gradients averaged over ranks and optimizer.step() applies them
        without averaging again (Horovod's synchronize / skip_synchronize)."""
        yield

    def allreduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.clone()

    def allgather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's tensor concatenated along dim 0 in rank order (first dims may differ)."""
        return tensor.clone()

    def allgather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's obj, on every rank."""
        return obj

    def barrier(self) -> None:
        """Wait until every rank gets here."""

    def close(self) -> None:
        """Leave the group."""


class SingleComm(Comm):
    """One process, no collectives."""


class HorovodComm(Comm):
    """Horovod (horovod.torch): DistributedOptimizer with backward_passes_per_step, parameters and
    optimizer state broadcast from rank 0."""

    name = "horovod"

    def __init__(self, use_gpu: bool = False):
        import horovod.torch as hvd

        hvd.init()
        self._hvd = hvd
        self.rank, self.size = hvd.rank(), hvd.size()
        self.local_rank, self.local_size = hvd.local_rank(), hvd.local_size()
        if use_gpu:
            torch.cuda.set_device(self.local_rank)

    def wrap_optimizer(self, optimizer, model, accumulation):
        return self._hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(),
                                              backward_passes_per_step=accumulation)

    def broadcast_state(self, model, optimizer):
        self._hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        # A fresh optimizer has no state; horovod would initialise it with a zero-gradient step, which
        # counts as an Adam step and applies weight decay. Fresh optimizers agree anyway.
        if optimizer.state_dict()["state"]:
            self._hvd.broadcast_optimizer_state(optimizer, root_rank=0)

    @contextlib.contextmanager
    def averaged_gradients(self, optimizer):
        optimizer.synchronize()
        with optimizer.skip_synchronize():
            yield

    def allreduce_sum(self, tensor):
        return self._hvd.allreduce(tensor, op=self._hvd.Sum)

    def allgather(self, tensor):
        return self._hvd.allgather(tensor)

    # Horovod matches collectives across ranks by name, and the default name is the object's type: a
    # rank broadcasting (epoch, path) while another passes None would wait forever. Fixed names.
    def allgather_object(self, obj):
        return self._hvd.allgather_object(obj, name="promolake.allgather_object")

    def broadcast_object(self, obj):
        return self._hvd.broadcast_object(obj, root_rank=0, name="promolake.broadcast_object")

    def barrier(self):
        self._hvd.barrier()


class TorchComm(Comm):
    """torch.distributed from the environment torchrun (TorchDistributor) sets: RANK, WORLD_SIZE,
    LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; gloo on CPU, nccl on GPU; DDP."""

    name = "torch_distributor"

    def __init__(self, use_gpu: bool = False):
        import torch.distributed as dist

        self._dist = dist
        self.rank, self.size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if use_gpu:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_gpu else "gloo")

    def wrap_model(self, model):
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def accumulating(self, model):
        return model.no_sync()

    def broadcast_state(self, model, optimizer):
        tensors = list(model.state_dict().values())
        for group in optimizer.param_groups:
            for p in group["params"]:
                tensors.extend(v for v in optimizer.state.get(p, {}).values() if torch.is_tensor(v))
        for t in tensors:
            self._broadcast_(t)

    def _broadcast_(self, tensor: torch.Tensor) -> None:
        on_device = tensor.to(self.device)
        self._dist.broadcast(on_device, src=0)
        if on_device is not tensor:
            tensor.copy_(on_device)

    def allreduce_sum(self, tensor):
        out = tensor.to(self.device, copy=True)
        self._dist.all_reduce(out)
        return out.to(tensor.device)

    def allgather(self, tensor):
        dist = self._dist
        n = torch.tensor([tensor.shape[0]], device=self.device)
        sizes = [torch.zeros_like(n) for _ in range(self.size)]
        dist.all_gather(sizes, n)
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=self.device)
        padded[:tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        return torch.cat([p[:int(s.item())] for p, s in zip(parts, sizes)]).to(tensor.device)

    def allgather_object(self, obj):
        out: list[Any] = [None] * self.size
        self._dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        box = [obj]
        self._dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self):
        self._dist.barrier()

    def close(self):
        if self._dist.is_initialized():
            self._dist.destroy_process_group()


# ----- pieces of the loop --------------------------------------------------------------------------

class _PairScorer(nn.Module):
    """One forward call (what DDP synchronises on) for users, positive items and hard negatives:
    returns (user, item, negatives or None) embeddings."""

    def __init__(self, net: TwoTower):
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, torch.Tensor]):
        user, item = self.net(batch["user_ids"], batch["user_mask"], batch["item_ids"], batch["item_mask"])
        negatives = self.net.encode(batch["neg_ids"], batch["neg_mask"], "item") if "neg_ids" in batch else None
        return user, item, negatives


def build_optimizer(net: nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on every parameter except biases and LayerNorm weights."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=learning_rate)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the learning rate at optimizer step `step` (0-based): (step + 1) / warmup_steps
    during warm-up, then linear decay from 1 at step warmup_steps to 1 / (total - warmup) at the last."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX-512 BF16, e.g. Intel Sapphire Rapids,
    AMD Zen 4): there bf16 autocast runs MiniLM about 3x faster in inference and 2x in training than fp32
    (BENCHMARKS "bf16 on the CPU"); elsewhere it is emulated and slower."""
    cpu = torch.cpu
    return any(bool(getattr(cpu, probe, lambda: False)()) for probe in ("_is_amx_tile_supported",
                                                                         "_is_avx512_bf16_supported"))


def resolve_precision(mixed_precision: str, device: torch.device) -> str:
    """"off", "bf16" or "fp16" for this device; fp16 needs CUDA. auto: fp16 on a GPU, bf16 on a CPU
    with native bfloat16 (cpu_has_native_bf16), else off."""
    if mixed_precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "off"
    if mixed_precision == "fp16" and device.type != "cuda":
        raise ValueError("mixed_precision 'fp16' needs a GPU (use_gpu=True); use 'bf16' on CPU")
    return mixed_precision


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def weights_fingerprint(net: nn.Module) -> dict[str, Any]:
    """{"abs_sum": sum of |w| over all parameters, "sha256": of the parameter names and bytes}:
    equal fingerprints mean identical weights."""
    digest = hashlib.sha256()
    total = 0.0
    for name, p in sorted(net.named_parameters()):
        data = p.detach().to("cpu", torch.float32).contiguous()
        total += float(data.abs().double().sum())
        digest.update(name.encode())
        digest.update(data.numpy().tobytes())
    return {"abs_sum": total, "sha256": digest.hexdigest()}


# ----- validation ----------------------------------------------------------------------------------

def _encode_rows(net: TwoTower, ids: np.ndarray, lengths: np.ndarray, rows: np.ndarray, tower: str,
                 device: torch.device, precision: str, batch_size: int) -> torch.Tensor:
    """Embeddings [len(rows), D] (float32, CPU) of the given rows, encoded shortest first so each batch
    is padded only to its longest text."""
    out = torch.zeros((len(rows), net.dim), dtype=torch.float32)
    order = np.argsort(lengths[rows], kind="stable")
    for start in range(0, len(rows), batch_size):
        chosen = order[start:start + batch_size]
        idx = rows[chosen]
        width = max(1, int(lengths[idx].max()))
        x = torch.from_numpy(np.ascontiguousarray(ids[idx, :width])).to(device)
        mask = (torch.arange(width)[None, :] < torch.from_numpy(lengths[idx])[:, None]).long().to(device)
        with _autocast(device, precision):
            out[torch.from_numpy(chosen)] = net.encode(x, mask, tower).float().cpu()
    return out


def evaluate(net: TwoTower, validation: ValidationSet, k: int, comm: Comm | None = None,
             device: torch.device | str = "cpu", precision: str = "off", batch_size: int = 64) -> dict[str, float]:
    """precision, recall, ndcg, map and hit_rate at k (promolake.ml.evaluation definitions), averaged over
    ALL validation users with a relevant item, plus users and users_with_recs. Each rank encodes items
    rank::size, the item matrix is allgathered, each rank ranks items by cosine for users rank::size,
    and per-user sums are allreduced. Collective: every rank of comm must call it."""
    from promolake.ml.evaluation import ranking_metric_sums

    comm = comm or SingleComm()
    device = torch.device(device)
    v = validation
    n_items, n_users = len(v.item_ids), len(v.user_ids)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        mine = np.arange(comm.rank, n_items, comm.size)
        gathered = comm.allgather(_encode_rows(net, v.item_ids, v.item_lengths, mine, "item", device, precision,
                                               batch_size))
        order = np.concatenate([np.arange(r, n_items, comm.size) for r in range(comm.size)])
        items = torch.empty_like(gathered)
        items[torch.from_numpy(order)] = gathered
        items = items.to(device)
        users = np.arange(comm.rank, n_users, comm.size)
        user_emb = _encode_rows(net, v.user_ids, v.user_lengths, users, "user", device, precision, batch_size)
        recommended = []
        for start in range(0, len(users), 256):
            scores = user_emb[start:start + 256].to(device) @ items.T
            if v.seen is not None:
                for j, u in enumerate(users[start:start + 256]):
                    scores[j, torch.as_tensor(v.seen[u], dtype=torch.long, device=device)] = -math.inf
            top = torch.topk(scores, min(k, n_items), dim=1)
            for values, indices in zip(top.values.cpu(), top.indices.cpu()):
                recommended.append(indices[torch.isfinite(values)].numpy())
    net.train(was_training)
    sums = ranking_metric_sums(recommended, [v.relevant[u] for u in users], k)
    names = (*_METRICS, "users", "users_with_recs")
    totals = comm.allreduce_sum(torch.tensor([sums[n] for n in names], dtype=torch.float64)).tolist()
    total = dict(zip(names, totals))
    if total["users"] == 0:
        raise ValueError("validation: no validation user has a relevant item")
    return {**{n: total[n] / total["users"] for n in _METRICS},
            "users": total["users"], "users_with_recs": total["users_with_recs"]}


# ----- checkpoints and logging ---------------------------------------------------------------------

def latest_checkpoint(checkpoint_dir: str | None) -> tuple[int, str | None]:
    """(epochs done, path) of the newest complete checkpoint in checkpoint_dir; (0, None) if none.
    Complete = present under its final name (written to a temporary name, then renamed)."""
    if not checkpoint_dir or not os.path.isdir(checkpoint_dir):
        return 0, None
    done = [int(m.group(1)) for m in map(_CHECKPOINT.match, os.listdir(checkpoint_dir)) if m]
    if not done:
        return 0, None
    epoch = max(done)
    return epoch, os.path.join(checkpoint_dir, f"epoch-{epoch:04d}.pt")


def _save_checkpoint(spec: TrainSpec, state: dict[str, Any]) -> None:
    os.makedirs(spec.checkpoint_dir, exist_ok=True)
    path = os.path.join(spec.checkpoint_dir, f"epoch-{state['epoch']:04d}.pt")
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)
    for name in os.listdir(spec.checkpoint_dir):
        m = _CHECKPOINT.match(name)
        if m and int(m.group(1)) <= state["epoch"] - spec.keep_checkpoints:
            os.remove(os.path.join(spec.checkpoint_dir, name))


def _log_epoch(spec: TrainSpec, epoch: int, entry: dict[str, Any]) -> None:
    """Rank 0's epoch metrics to the MLflow run; a failure is reported, not raised (the other ranks
    would wait forever, and the metrics also come back in train's result)."""
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, float(value), now, epoch) for name, value in entry.items()
                   if name != "epoch" and isinstance(value, (int, float)) and math.isfinite(value)]
        MlflowClient(tracking_uri=spec.mlflow_tracking_uri).log_batch(spec.mlflow_run_id, metrics=metrics)
    except Exception as exc:  # noqa: BLE001 - logging must not stop training
        print(f"{_LOG} could not log epoch {epoch} to MLflow run {spec.mlflow_run_id}: {exc}", flush=True)


# ----- the loop ------------------------------------------------------------------------------------

@dataclass
class _Run:
    """The live training objects of one rank."""

    spec: TrainSpec
    comm: Comm
    net: TwoTower
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: Any
    device: torch.device
    precision: str
    steps_per_epoch: int


def _train_epoch(run: _Run, epoch: int) -> dict[str, float]:
    """One epoch on this rank: steps_per_epoch optimizer steps of grad_accumulation micro-batches.
    Returns this rank's loss sum, micro-batches, samples and seconds."""
    spec, comm, accum = run.spec, run.comm, run.spec.grad_accumulation
    run.model.train()
    torch.manual_seed(_epoch_seed(spec.seed, epoch, comm.rank))
    batches = iter(spec.data.batches(comm.rank, comm.size, epoch))
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    samples, started = 0, time.perf_counter()
    for step in range(run.steps_per_epoch):
        for micro in range(accum):
            batch = next(batches, None)
            if batch is None:
                raise RuntimeError(f"rank {comm.rank}: the data source ended before {run.steps_per_epoch * accum} "
                                   f"batches in epoch {epoch + 1}")
            batch = {name: t.to(run.device, non_blocking=True) for name, t in batch.items()}
            samples += int(batch["user_ids"].shape[0])
            with (comm.accumulating(run.model) if micro < accum - 1 else contextlib.nullcontext()):
                with _autocast(run.device, run.precision):
                    user, item, negatives = run.model(batch)
                    loss = contrastive_loss(user, item, spec.temperature, batch["item_key"], negatives)
                scaled = loss / accum
                (run.scaler.scale(scaled) if run.scaler is not None else scaled).backward()
            loss_sum += loss.detach().double()
        with comm.averaged_gradients(run.optimizer):
            if spec.max_grad_norm > 0:
                if run.scaler is not None:
                    run.scaler.unscale_(run.optimizer)
                nn.utils.clip_grad_norm_(run.net.parameters(), spec.max_grad_norm)
            if run.scaler is not None:
                run.scaler.step(run.optimizer)
                run.scaler.update()
            else:
                run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad()   # set_to_none (the default); Horovod's wrapper takes no arguments
        if comm.rank == 0 and spec.log_every and (step + 1) % spec.log_every == 0:
            seconds = time.perf_counter() - started
            print(f"{_LOG} epoch {epoch + 1}/{spec.epochs} step {step + 1}/{run.steps_per_epoch} "
                  f"loss {float(loss_sum) / ((step + 1) * accum):.4f} "
                  f"{samples / seconds:.1f} samples/s (rank 0)", flush=True)
    return {"loss_sum": float(loss_sum), "batches": run.steps_per_epoch * accum, "samples": samples,
            "seconds": time.perf_counter() - started}


def _epoch_entry(run: _Run, epoch: int, local: dict[str, float]) -> dict[str, Any]:
    """The epoch's history row, the same on every rank: mean loss over all ranks' batches, samples/s of
    the whole group (all samples / mean rank time) and per worker, and validation metrics at k."""
    comm, k = run.comm, run.spec.k
    loss_sum, batches, samples, seconds = comm.allreduce_sum(torch.tensor(
        [local["loss_sum"], local["batches"], local["samples"], local["seconds"]], dtype=torch.float64)).tolist()
    mean_seconds = seconds / comm.size
    entry: dict[str, Any] = {"epoch": epoch + 1, "loss": loss_sum / batches,
                             "samples_per_second": samples / mean_seconds,
                             "samples_per_second_per_worker": samples / mean_seconds / comm.size,
                             "seconds": mean_seconds}
    if run.spec.validation is not None:
        metrics = evaluate(run.net, run.spec.validation, k, comm, run.device, run.precision,
                           run.spec.eval_batch_size)
        entry.update({f"val_{name}_at_{k}": metrics[name] for name in _METRICS})
    return entry


def _resume(run: _Run) -> tuple[int, list[dict[str, Any]]]:
    """Load the newest complete checkpoint that rank 0 sees, on every rank; (epochs done, history)."""
    spec, comm = run.spec, run.comm
    epoch, path = comm.broadcast_object(latest_checkpoint(spec.checkpoint_dir) if comm.rank == 0 else None)
    if not epoch:
        return 0, []
    if not os.path.exists(path):
        raise FileNotFoundError(f"rank {comm.rank} cannot read checkpoint {path}: checkpoint_dir must be "
                                f"shared by all ranks")
    state = torch.load(path, map_location=run.device, weights_only=True)
    expected = {"world_size": comm.size, "steps_per_epoch": run.steps_per_epoch,
                "grad_accumulation": spec.grad_accumulation}
    found = {name: state.get(name) for name in expected}
    if found != expected:
        raise ValueError(f"checkpoint {path} was written with {found}, this run has {expected}: use a new "
                         f"checkpoint_dir")
    run.net.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    return epoch, list(state["history"])


def _checkpoint_state(run: _Run, epoch: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {"epoch": epoch, "history": history, "model": run.net.state_dict(),
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict() if run.scaler is not None else None,
            "world_size": run.comm.size, "steps_per_epoch": run.steps_per_epoch,
            "grad_accumulation": run.spec.grad_accumulation, "seed": run.spec.seed}


def _setup(spec: TrainSpec, comm: Comm) -> _Run:
    if spec.use_gpu and not torch.cuda.is_available():
        raise RuntimeError("use_gpu=True but torch sees no CUDA device")
    device = torch.device("cuda", comm.local_rank) if spec.use_gpu else torch.device("cpu")
    precision = resolve_precision(spec.mixed_precision, device)
    batches = spec.data.steps_per_epoch(comm.size)
    steps_per_epoch = batches // spec.grad_accumulation
    if steps_per_epoch < 1:
        raise ValueError(f"{batches} batches per rank per epoch (world size {comm.size}) make no optimizer step "
                         f"with grad_accumulation {spec.grad_accumulation}")
    net = spec.model_factory().to(device)
    model = comm.wrap_model(_PairScorer(net))
    optimizer = comm.wrap_optimizer(build_optimizer(net, spec.learning_rate * comm.size, spec.weight_decay),
                                    net, spec.grad_accumulation)
    total = steps_per_epoch * spec.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, spec.warmup_steps, total))
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    return _Run(spec, comm, net, model, optimizer, scheduler, scaler, device, precision, steps_per_epoch)


def train(spec: TrainSpec, comm: Comm | None = None) -> dict[str, Any]:
    """Train (or resume) as described in the module docstring, on this rank of comm (SingleComm when
    None). Collective: every rank must call it.

    Returns, on every rank: history (one dict per epoch done, resumed ones included: epoch, loss,
    samples_per_second, samples_per_second_per_worker, seconds, val_<metric>_at_<k>), world_size, rank,
    engine, steps (optimizer steps done in total), steps_per_epoch, learning_rate (the scaled one),
    resumed_from_epoch (0: fresh start), finished (all epochs done), output_dir (where the model was
    saved, else None) and fingerprint (weights_fingerprint of this rank's final weights).
    """
    comm = comm or SingleComm()
    run = _setup(spec, comm)
    start, history = _resume(run)
    comm.broadcast_state(run.net, run.optimizer)
    if comm.rank == 0:
        print(f"{_LOG} {comm.name} x {comm.size}: epochs {start + 1}..{spec.epochs}, {run.steps_per_epoch} steps "
              f"per epoch, lr {spec.learning_rate * comm.size:g}, precision {run.precision}, device {run.device}",
              flush=True)
    done_here = 0
    for epoch in range(start, spec.epochs):
        if spec.stop_after_epochs is not None and done_here >= spec.stop_after_epochs:
            break
        entry = _epoch_entry(run, epoch, _train_epoch(run, epoch))
        history.append(entry)
        done_here += 1
        if comm.rank == 0:
            if spec.checkpoint_dir:
                _save_checkpoint(spec, _checkpoint_state(run, epoch + 1, history))
            if spec.mlflow_run_id:
                _log_epoch(spec, epoch + 1, entry)
            print(f"{_LOG} " + " ".join(f"{n} {v:.4g}" if isinstance(v, float) else f"{n} {v}"
                                        for n, v in entry.items()), flush=True)
        comm.barrier()
    finished = len(history) == spec.epochs
    saved = None
    if finished and spec.output_dir:
        saved = spec.output_dir
        if comm.rank == 0:
            _save_output(run, history)
        comm.barrier()
    return {"history": history, "world_size": comm.size, "rank": comm.rank, "engine": comm.name,
            "steps": len(history) * run.steps_per_epoch, "steps_per_epoch": run.steps_per_epoch,
            "learning_rate": spec.learning_rate * comm.size, "resumed_from_epoch": start, "finished": finished,
            "output_dir": saved, "fingerprint": weights_fingerprint(run.net)}


def _save_output(run: _Run, history: list[dict[str, Any]]) -> None:
    from promolake.text.model import load_tokenizer

    spec = run.spec
    tokenizer = load_tokenizer(spec.tokenizer) if spec.tokenizer else None
    extra = {"training": {"engine": run.comm.name, "world_size": run.comm.size, "epochs": spec.epochs,
                          "temperature": spec.temperature, "k": spec.k, "history": history}, **spec.extra}
    run.net.save(spec.output_dir, tokenizer=tokenizer, extra=extra)


# ----- engines -------------------------------------------------------------------------------------

def _set_threads(comm: Comm) -> None:
    """Share the machine's cores among the ranks on it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // comm.local_size))


def _train_and_gather(spec: TrainSpec, comm: Comm) -> list[dict[str, Any]]:
    _set_threads(comm)
    try:
        return comm.allgather_object(train(spec, comm))
    finally:
        comm.close()


def _horovod_worker(spec: TrainSpec) -> list[dict[str, Any]]:
    """One Horovod rank: every rank returns every rank's result (HorovodRunner keeps only rank 0's)."""
    return _train_and_gather(spec, HorovodComm(spec.use_gpu))


def _torch_worker(spec: TrainSpec) -> list[dict[str, Any]]:
    """One torchrun rank: every rank returns every rank's result (TorchDistributor keeps one)."""
    return _train_and_gather(spec, TorchComm(spec.use_gpu))


def _active_spark(spark):
    if spark is not None:
        return spark
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        raise RuntimeError("engines 'horovod' and 'torch_distributor' need an active SparkSession")
    return active


def _launch_horovod(spec: TrainSpec, num_proc: int, spark, start_timeout: int) -> list[dict[str, Any]]:
    try:
        from sparkdl import HorovodRunner  # Databricks ML runtime
    except ImportError:
        HorovodRunner = None
    if HorovodRunner is not None:
        return HorovodRunner(np=num_proc).run(_horovod_worker, spec=spec)
    try:
        import horovod.spark
    except ImportError as e:
        raise RuntimeError("engine 'horovod' needs horovod built with PyTorch and Gloo (see docs: "
                           "ENVIRONMENT.md, Horovod build recipe) or a Databricks ML runtime") from e
    _active_spark(spark)
    results = horovod.spark.run(_horovod_worker, args=(spec,), num_proc=num_proc, use_gloo=True,
                                start_timeout=start_timeout, verbose=0)
    return results[0]


def _launch_torch_distributor(spec: TrainSpec, num_proc: int, spark) -> list[dict[str, Any]]:
    try:
        from pyspark.ml.torch.distributor import TorchDistributor
    except ImportError as e:
        raise RuntimeError("engine 'torch_distributor' needs pyspark >= 3.4 with torch installed") from e
    master = _active_spark(spark).sparkContext.master
    distributor = TorchDistributor(num_processes=num_proc, local_mode=master.startswith("local"),
                                   use_gpu=spec.use_gpu)
    return distributor.run(_torch_worker, spec)


def launch_all(spec: TrainSpec, engine: str, num_proc: int = 1, spark=None,
               start_timeout: int = 600) -> list[dict[str, Any]]:
    """Run train(spec) on num_proc ranks with the engine (see the module docstring); every rank's result,
    in rank order. "local" runs one rank in this process whatever num_proc says."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"num_proc must be a positive int, got {num_proc!r}")
    if engine == "local":
        return [train(spec, SingleComm())]
    if engine == "horovod":
        return _launch_horovod(spec, num_proc, spark, start_timeout)
    return _launch_torch_distributor(spec, num_proc, spark)


def launch(spec: TrainSpec, engine: str, num_proc: int = 1, spark=None, start_timeout: int = 600) -> dict[str, Any]:
    """Rank 0's result of launch_all (see train for its keys)."""
    return launch_all(spec, engine, num_proc, spark, start_timeout)[0]
