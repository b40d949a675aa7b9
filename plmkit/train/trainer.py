"""The one training loop, shared by pretraining, fine-tuning and distillation.

A stage hands `fit` a model, a `BatchSource` (CPU tensors, plus a cursor it can save) and a loss
function; the trainer knows nothing else about either. Each optimizer step reads, in order:
eval if due → `grad_accum` micro-batches (forward under autocast, backward of loss/grad_accum)
→ clip → AdamW step → schedule → log → save if due. Training stops after the step plan's
steps: `max_steps`, or what a `max_time_s` budget comes to, fixed once at the start (plan.py),
so schedules and curricula follow the step count alone. Checkpoints (see state.py) restore
weights, optimizer, RNG, data cursor, clock and plan, so a resumed run is bit-identical to an
uninterrupted one on CPU, time-budgeted or not. They are written every `save_every` steps,
every `save_every_s` seconds of training, at the end, and when SIGTERM or SIGINT arrives
(preempt.py: the run then exits non-zero after the step in flight). The cost: evaluation runs
with the RNG states saved and put back, and each checkpoint holds the optimizer state too.

Several processes (torchrun, DDP): `no_sync` during accumulation, a stop decision all ranks
agree on, rank 0 alone writing. Each rank's BatchSource yields that rank's batches (pretraining
sources seeded per rank, runtime.processes.data_seed; fine-tuning ones split a shared shuffle);
a checkpoint gathers every rank's data cursor and generator states, so a run resumes exactly
with as many processes as it was saved with (a test resumes a two-process CPU run
bit-identically). FSDP is not built.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn

from plmkit.config import TrainConfig, to_dict
from plmkit.runtime.compiling import compile_step
from plmkit.runtime.console import print0
from plmkit.runtime.devices import autocast_dtype, seed_everything
from plmkit.runtime.errors import UserError
from plmkit.runtime.processes import is_main_process, rank, world_size
from plmkit.train import log, ranks, state, throughput
from plmkit.train.checks import check_train_config
from plmkit.train.optim import build_optimizer, set_lr
from plmkit.train.plan import step_plan
from plmkit.train.preempt import StopSignals


class BatchSource(Protocol):
    """Where batches come from: CPU tensors on demand, and a cursor that checkpoints can hold."""

    def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
        """The next micro-batch; `progress` in [0, 1] is the share of the run done."""
        ...

    def state_dict(self) -> dict:
        """A JSON-serialisable data cursor (epoch, position, RNG seed state, ...)."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Continue from a cursor returned by `state_dict`."""
        ...


# A loss function returns (loss, metrics); a metric may be a 0-dim device tensor (read at log time).
LossFn = Callable[
    [nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float | torch.Tensor]]
]
EvalFn = Callable[[nn.Module], dict[str, float]]


class FitResult(NamedTuple):
    """What `fit` returns: where training stopped and what it last measured."""

    steps: int
    train_time_s: float
    metrics: dict[str, float]  # last logged train metrics + last eval metrics (eval_*)
    history: list[dict]  # every row of metrics.jsonl, resumed runs included
    throughput: dict  # tokens/s, MFU, data-wait share and peak memory over the run (throughput.py)


@dataclasses.dataclass
class _Run:
    """Everything the loop touches, built once by `fit`."""

    model: nn.Module  # the plain module: evaluated and saved
    step_model: nn.Module  # what trains: the model, maybe DDP-wrapped
    ddp: nn.parallel.DistributedDataParallel | None
    optimizer: torch.optim.Optimizer
    batches: BatchSource
    forward_loss: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, dict]]  # maybe compiled
    cfg: TrainConfig
    device: torch.device
    amp_dtype: torch.dtype | None
    run_dir: Path
    run_config: dict | None
    keep: int
    step: int = 0
    train_time_s: float = 0.0
    plan: dict = dataclasses.field(default_factory=dict)  # plan.step_plan's; "steps" ends the run
    saved_at: float = 0.0  # perf_counter() of the last checkpoint, for save_every_s


def fit(
    model: nn.Module,
    batches: BatchSource,
    loss_fn: LossFn,
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    eval_fn: EvalFn | None = None,
    resume: bool = False,
    run_config: dict | None = None,
    keep_checkpoints: int = 2,
) -> FitResult:
    """Train `model` with `loss_fn` on `batches` under `cfg`, checkpointing into `run_dir`."""
    run_dir = Path(run_dir)
    check_train_config(cfg)
    state.open_run(run_dir)  # the one-writer lock, before anything is written
    ckpt = _checkpoint_to_resume(run_dir, resume)
    saved = state.read_trainer_state(ckpt) if ckpt is not None else None
    if saved is not None:
        state.check_resume_config(saved, cfg, run_config)
    else:
        seed_everything(cfg.seed + rank())
    run = _setup(model, batches, loss_fn, cfg, run_dir, run_config, keep_checkpoints)
    rng = _restore(run, ckpt) if ckpt is not None else None
    run.plan = _plan(run, saved.get("plan") if saved is not None else None)
    main = is_main_process()
    history = log.restart(run_dir, run.step) if main else []
    meter = throughput.Meter(model, run.device, throughput.peak_flops(cfg, run.device, run.amp_dtype))
    logger = log.TrainLog(run_dir, run.plan["steps"], run.step, history, meter=meter, enabled=main,
                          window=saved.get("log_window") if saved is not None else None)
    if rng is not None:
        state.restore_rng(rng)  # last, so nothing above draws from the restored streams
    try:
        with StopSignals() as signals:
            _loop(run, logger, eval_fn, signals)
    finally:
        logger.close()
    if main:
        log.write_curves(run_dir)
    return FitResult(run.step, run.train_time_s, logger.summary(), logger.history,
                     meter.summary(logger.history))


def _loop(run: _Run, logger: log.TrainLog, eval_fn: EvalFn | None, signals: StopSignals) -> None:
    """Optimizer steps until the plan's last: eval, accumulate, clip, step, log, save."""
    cfg = run.cfg
    lr = set_lr(run.optimizer, cfg, _progress(run))
    run.saved_at = time.perf_counter()
    while True:
        done = run.step >= run.plan["steps"]
        # eval: the weights after `step` optimizer steps, every eval_every steps and at the end
        if eval_fn is not None and run.step > 0 and (done or _due(run.step, cfg.eval_every)):
            logger.eval(run.step, run.train_time_s, _evaluate(run, eval_fn))
        if done:
            break
        started = time.perf_counter()
        run.step_model.train()
        progress = _progress(run)
        # accumulate: grad_accum micro-batches; scaling each loss makes the gradient their mean
        for micro in range(cfg.grad_accum):
            asked = time.perf_counter()  # the wait for data: the time inside next_batch
            batch = run.batches.next_batch(progress)
            waited = time.perf_counter() - asked
            with _no_sync(run, last=micro == cfg.grad_accum - 1):
                with _autocast(run):
                    loss, metrics = run.forward_loss(_to_device(batch, run.device))
                (loss / cfg.grad_accum).backward()
            logger.add(loss, metrics, batch, waited)
        # clip
        grad_norm = None
        if cfg.clip_norm > 0:
            grad_norm = nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_norm)
        # step, then the schedule sets the learning rate of the next step
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        run.step += 1
        run.train_time_s += time.perf_counter() - started
        step_lr, lr = lr, set_lr(run.optimizer, cfg, _progress(run))
        last = run.step >= run.plan["steps"]
        timed = cfg.save_every_s > 0 and time.perf_counter() - run.saved_at >= cfg.save_every_s
        stop, timed = ranks.agree_any(run.ddp, run.device, signals.requested, timed)
        # log
        write = last or stop or _due(run.step, cfg.log_every)
        logger.end_step(run.step, run.train_time_s, step_lr, grad_norm, write=write)
        # save
        if last or stop or timed or _due(run.step, cfg.save_every):
            _save(run, logger, lr)
        if stop and not last:
            print0(f"stopped at step {run.step}; resume=true continues")
            raise SystemExit(128 + (signals.signum or 15))


# ----------------------------------------------------------------------------- the loop's helpers


def _progress(run: _Run) -> float:
    """Share of the run done, by the step count alone (so a resumed run replays it exactly)."""
    return min(1.0, run.step / max(run.plan["steps"], 1))


def _plan(run: _Run, saved: dict | None) -> dict:
    """The step plan (plan.py), the same on every rank: the fewest steps any rank's probe allows."""
    plan = step_plan(run.cfg, saved, lambda: _time_one_step(run))
    if run.ddp is not None and plan.get("step_s") is not None and saved is None:
        plan["steps"] = ranks.agree_min(run.device, plan["steps"])
    return plan


def _time_one_step(run: _Run) -> float:
    """Seconds one step's forward and backward passes take; weights, gradients, data cursor and
    generators are left as they were (no optimizer step)."""
    cursor, rng = copy.deepcopy(run.batches.state_dict()), state.capture_rng()
    run.step_model.train()
    started = time.perf_counter()
    for _ in range(run.cfg.grad_accum):
        with _autocast(run):
            loss, _ = run.forward_loss(_to_device(run.batches.next_batch(0.0), run.device))
        loss.backward()
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    elapsed = time.perf_counter() - started
    run.optimizer.zero_grad(set_to_none=True)
    run.batches.load_state_dict(cursor)
    state.restore_rng(rng)
    return elapsed


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Copies that do not wait for the GPU: from pinned memory, non-blocking. With no other host
    sync in a step (losses keep their metrics on the device), the CPU builds the next batch
    while the GPU still runs this step."""
    if device.type != "cuda":
        return {key: value.to(device) for key, value in batch.items()}
    return {key: value.pin_memory().to(device, non_blocking=True) for key, value in batch.items()}


def _autocast(run: _Run) -> contextlib.AbstractContextManager[Any]:
    if run.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(run.device.type, dtype=run.amp_dtype)


def _no_sync(run: _Run, *, last: bool) -> contextlib.AbstractContextManager[Any]:
    """Under DDP, skip the gradient all-reduce on every micro-batch but the last."""
    if run.ddp is None or last:
        return contextlib.nullcontext()
    return run.ddp.no_sync()


def _evaluate(run: _Run, eval_fn: EvalFn) -> dict[str, float]:
    """Call `eval_fn` on the plain model, leaving every training RNG stream as it was."""
    rng = state.capture_rng()
    try:
        with torch.no_grad(), _autocast(run):
            return eval_fn(run.model)
    finally:
        state.restore_rng(rng)


def _save(run: _Run, logger: log.TrainLog, next_lr: float) -> None:
    """Checkpoint: weights, optimizer, RNG, and the trainer's own position. Under torchrun
    every rank's data cursor and RNG state are gathered, and rank 0 alone writes."""
    cursors = ranks.gather(run.ddp, run.batches.state_dict())  # one per rank
    rngs = ranks.gather(run.ddp, state.capture_rng()) if run.ddp is not None else None
    if not is_main_process():
        return
    trainer = {
        "step": run.step,
        "train_time_s": run.train_time_s,
        "batches": cursors[0],
        "schedule": {"progress": _progress(run), "lr": next_lr},
        "plan": run.plan,
        "log_window": logger.window_state(),
        "train_config": to_dict(run.cfg),
        "run_config": run.run_config,
        "world_size": world_size(),
    }
    if len(cursors) > 1:
        trainer["batches_by_rank"] = cursors
    state.save_checkpoint(
        run.run_dir,
        step=run.step,
        model=run.model,
        optimizer=run.optimizer,
        trainer=trainer,
        keep=run.keep,
        rng_by_rank=rngs,  # alone, save_checkpoint's own rng.pt is the whole story
    )
    run.saved_at = time.perf_counter()


# ----------------------------------------------------------------------------- setup


def _checkpoint_to_resume(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from; a fresh run must not mix with an old run's checkpoints.
    `resume` over a run that never reached its first checkpoint starts it from step 0, so a
    job script can always pass resume=true (a preemption may come before the first save)."""
    where = run_dir / state.CHECKPOINTS
    if not resume:
        if state.latest_checkpoint(run_dir) is not None:
            raise UserError(f"{where} already holds checkpoints: resume the run or train into a "
                            "new directory")
        return None
    if not state.list_checkpoints(run_dir):
        print0(f"resume: no checkpoint in {where} yet; starting the run from step 0")
        return None
    ckpt = state.usable_checkpoint(run_dir)  # the newest that is whole
    if ckpt is None:
        raise UserError(f"resume: no checkpoint to resume in {where} (none there is whole)")
    return ckpt


def _setup(
    model: nn.Module,
    batches: BatchSource,
    loss_fn: LossFn,
    cfg: TrainConfig,
    run_dir: Path,
    run_config: dict | None,
    keep: int,
) -> _Run:
    """Place the model, build its optimizer and the module that trains (DDP, compiled)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = ranks.training_device(cfg)
    amp_dtype = autocast_dtype(device, cfg.precision)
    model.to(device)
    optimizer = build_optimizer(model, cfg, device)
    step_model, ddp = ranks.wrap(model, device)

    def forward_loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        return loss_fn(step_model, batch)

    return _Run(
        model=model,
        step_model=step_model,
        ddp=ddp,
        optimizer=optimizer,
        batches=batches,
        # Compiled as one graph with the model, the loss fuses into the last matmul's consumers
        # instead of re-reading (B, T, V) logits several times in eager kernels.
        forward_loss=compile_step(forward_loss, dynamic=cfg.compile_dynamic or None)
        if cfg.compile else forward_loss,
        cfg=cfg,
        device=device,
        amp_dtype=amp_dtype,
        run_dir=run_dir,
        run_config=run_config,
        keep=keep,
    )


def _restore(run: _Run, ckpt: Path) -> dict[str, Any]:
    """Load a checkpoint into the run; return this rank's RNG states (applied just before the
    loop). Each rank takes back its own data cursor: resume with as many processes as saved."""
    restored = state.load_checkpoint(ckpt, run.model, run.optimizer)
    trainer = restored.trainer
    saved_world = trainer.get("world_size", 1)
    if saved_world != world_size():
        raise UserError(
            f"resume: {ckpt} was saved by {saved_world} process(es), this run has "
            f"{world_size()}: resume with the same number (each holds its own data position)"
        )
    run.step, run.train_time_s = trainer["step"], trainer["train_time_s"]
    run.batches.load_state_dict(trainer.get("batches_by_rank", [trainer["batches"]])[rank()])
    return restored.rng
