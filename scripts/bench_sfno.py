"""Benchmark: SFNO vs neuraloperator's FNO3d on forced Navier–Stokes, then Spectral-Refiner.

One run, same data, same training budget, similar parameter counts:

1. data: `physim data nse` CPU preset — forced FNO-NS flow at 64², 288 trajectories
   (256 train, 32 test), task 10 frames → 40 frames (0.2 s apart); plus 8 trajectories
   solved at 128² for zero-shot super-resolution;
2. train SFNO and FNO3d through physim's shared training loop with the same loss
   (relative L²), optimizer, batch size and wall-time budget; each model's epoch count is
   set from a timed probe so that its learning-rate schedule completes within the budget;
3. test relative L²(0,T;L²) at 64² and zero-shot at 128²;
4. Spectral-Refiner (label-free) on the trained SFNO: its learning rate is chosen on a
   *validation* split — trajectories generated with their own seeds, checked disjoint from
   the training and test trajectories — and the chosen setting is then applied once to the
   test trajectories at 64² and 128²: relative L² and the H⁻¹ residual before and after, and
   how well the residual ranks the true errors (a-posteriori estimate). Test samples never
   enter the choice.

    .venv/bin/python scripts/bench_sfno.py --budget-minutes 8 --json out/bench_sfno/result.json

Timings on a shared machine are noisy; the comparison is within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import torch


def real_params(model: torch.nn.Module) -> int:
    """Real degrees of freedom (a complex parameter counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


class _WallClockCosine:
    """Learning rate lr·½(1 + cos(π·elapsed/budget)) after 10 warm-up steps: both models get the same schedule
    over the same wall time, however many steps they manage."""

    def __init__(self, lr: float, budget: float, warmup: int = 10):
        self.lr, self.budget, self.warmup, self.steps, self.start = lr, budget, warmup, 0, None

    def on_batch_end(self, trainer, step, loss) -> None:
        if self.start is None:
            self.start = time.perf_counter()
        self.steps += 1
        frac = min(1.0, (time.perf_counter() - self.start) / self.budget)
        lr = self.lr * max(0.5 * (1 + math.cos(math.pi * frac)), 1e-3) * min(1.0, (self.steps + 1) / self.warmup)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr


def check_disjoint(val, others) -> None:
    """Refuse a validation file that shares a seed or a trajectory with the training/test files."""
    for other in others:
        if int(val.settings["seed"]) == int(other.settings["seed"]):
            raise SystemExit(f"{val.path}: seed {val.settings['seed']} is also the seed of {other.path}; "
                             "the validation split must be disjoint from training and test data")
        if other.vorticity.shape[-1] == val.vorticity.shape[-1]:
            a, b = val.vorticity[:, 0].flatten(1), other.vorticity[:, 0].flatten(1)
            if float(torch.cdist(a, b).min()) < 1e-6 * float(b.norm(dim=1).mean()):
                raise SystemExit(f"{val.path}: a validation trajectory also appears in {other.path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path("out/data"))
    ap.add_argument("--run-dir", type=Path, default=Path("out/bench_sfno"))
    ap.add_argument("--budget-minutes", type=float, default=8.0, help="training wall time per model")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--refine-iterations", type=int, default=300)
    ap.add_argument("--refine-lrs", type=str, default="2e-4,5e-4,1e-3",
                    help="refiner learning rates tried on the validation split (comma-separated)")
    ap.add_argument("--val-samples", type=int, default=4, help="validation trajectories used to pick the learning rate")
    ap.add_argument("--refine-samples", type=int, default=8, help="test samples refined at 64²")
    ap.add_argument("--refine-samples-128", type=int, default=8, help="test samples refined at 128²")
    ap.add_argument("--time-refine", type=int, default=1, help="output samples per frame for the CN residual")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared machine)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--refine-only", action="store_true",
                    help="skip training: reload the models this script saved in --run-dir and rerun steps 3-4")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from physim.operators import load_operator
    from physim.operators.fno import FNO3d
    from physim.operators.losses import relative_lp
    from physim.operators.refiner import RefinerConfig, SpectralRefiner
    from physim.operators.sfno import SFNO
    from physim.operators.training import TrainConfig, Trainer

    from physim.io.atomic import atomic_write_text
    from physim.spectral.data import NSEDataConfig, SpaceTimeWindows, generate, load_nse_dataset

    t_start = time.perf_counter()
    # -- 1. data ------------------------------------------------------------------------------------
    f64, f128 = args.data_dir / "nse_cpu.h5", args.data_dir / "nse_cpu_128.h5"
    if not f64.exists():
        generate(NSEDataConfig(out=f64, preset="cpu"))
    if not f128.exists():
        generate(NSEDataConfig(out=f128, preset="cpu", n_solve=128, n_out=128, n_traj=8, batch_size=8, seed=7))
    # Validation split for the refiner's hyperparameters: its own seeds (chunk i of a file draws with
    # seed·1000003 + i, so distinct seeds give disjoint initial fields), checked below.
    fval = args.data_dir / "nse_cpu_val.h5"
    if not fval.exists():
        generate(NSEDataConfig(out=fval, preset="cpu", n_traj=16, batch_size=16, seed=3))
    d64, d128, dval = load_nse_dataset(f64), load_nse_dataset(f128), load_nse_dataset(fval)
    check_disjoint(dval, [d64, d128])
    t_in, t_out = 10, 40
    train = SpaceTimeWindows(d64.vorticity[:256], t_in, t_out)
    test = SpaceTimeWindows(d64.vorticity[256:], t_in, t_out)
    test128 = SpaceTimeWindows(d128.vorticity, t_in, t_out)
    print(f"data: train {tuple(train.x.shape)} -> {tuple(train.y.shape)}, test {len(test)}, "
          f"zero-shot 128² {len(test128)}; {time.perf_counter() - t_start:.0f} s")

    # -- 2. models and training -------------------------------------------------------------------
    w = args.width
    models = {
        "SFNO": SFNO(modes_x=12, modes_y=12, modes_t=5, width=w, expansion=2, latent_steps=10, out_steps=t_out),
        "FNO3d (neuraloperator)": FNO3d(modes_x=12, modes_y=12, modes_t=5, width=w, in_steps=t_in, out_steps=t_out),
    }
    models["FNO3d (neuraloperator)"].set_normalizer(train.x)

    def loss_fn(model, batch):
        return relative_lp(model(batch["x"]), batch["y"], spatial_dims=(1, 2))

    rows = {}
    budget = 60.0 * args.budget_minutes
    for name, model in models.items():
        torch.manual_seed(0)
        run_dir = args.run_dir / name.split()[0].lower()
        if args.refine_only:
            saved = run_dir / "final.pt" if (run_dir / "final.pt").exists() else run_dir / "best.pt"
            models[name] = model = load_operator(saved)
            model.eval()
            with torch.no_grad():
                err64 = float(torch.cat([relative_lp(model(test.x[i:i + 8]), test.y[i:i + 8], spatial_dims=(1, 2),
                                                     reduction="none") for i in range(0, len(test), 8)]).mean())
                err128 = float(relative_lp(model(test128.x), test128.y, spatial_dims=(1, 2)))
            rows[name] = {"params": real_params(model), "epochs": 0, "steps": 0, "train_s": 0.0, "test_l2_64": err64,
                          "zero_shot_l2_128": err128}
            print(f"{name}: reloaded {saved}: {rows[name]}")
            continue
        shutil.rmtree(run_dir, ignore_errors=True)  # one fresh run per benchmark
        # Equal wall time for both: constant base schedule, replaced by a cosine decay over the budget
        # (a callback), and the loop stops at max_wall_time.
        cfg = TrainConfig(run_dir=run_dir, epochs=1000, batch_size=args.batch_size, lr=args.lr, schedule="constant",
                          max_wall_time=budget, log="csv", seed=0)
        print(f"{name}: {real_params(model):,} real parameters, {budget:.0f} s of training")
        clock = _WallClockCosine(args.lr, budget)
        result = Trainer(model, cfg, train, loss_fn=loss_fn, callbacks=[clock]).fit()
        model.save(run_dir / "final.pt")
        model.eval()
        with torch.no_grad():
            err64 = float(torch.cat([relative_lp(model(test.x[i:i + 8]), test.y[i:i + 8], spatial_dims=(1, 2),
                                                 reduction="none") for i in range(0, len(test), 8)]).mean())
            err128 = float(relative_lp(model(test128.x), test128.y, spatial_dims=(1, 2)))
        rows[name] = {"params": real_params(model), "epochs": len(result.history), "steps": clock.steps,
                      "train_s": result.wall_time,
                      "train_loss": result.history[-1]["train_loss"], "test_l2_64": err64, "zero_shot_l2_128": err128}
        print(f"  {rows[name]}")

    # -- 3. Spectral-Refiner on the trained SFNO ------------------------------------------------------
    sfno = models["SFNO"]
    for p in sfno.parameters():
        p.requires_grad_(False)
    nu, frame_dt = d64.settings["viscosity"], d64.frame_dt

    def refiner_cfg(lr):
        return RefinerConfig(iterations=args.refine_iterations, lr_weight=lr, lr_bias=lr, time_refine=args.time_refine)

    # 3a. choose the learning rate on the validation split only (labels of validation data are allowed here).
    val = SpaceTimeWindows(dval.vorticity[:args.val_samples], t_in, t_out)
    tuning = {}
    for lr in [float(v) for v in args.refine_lrs.split(",")]:
        ref = SpectralRefiner(sfno, viscosity=nu, frame_dt=frame_dt, forcing=dval.forcing, cfg=refiner_cfg(lr))
        out = ref.refine(val.x, progress=True)
        e0 = relative_lp(out.initial_prediction, val.y, spatial_dims=(1, 2), reduction="none")
        e1 = relative_lp(out.prediction, val.y, spatial_dims=(1, 2), reduction="none")
        tuning[lr] = float(e1.mean() / e0.mean())
        print(f"validation lr {lr:g}: rel. L² {float(e0.mean()):.3e} -> {float(e1.mean()):.3e} "
              f"(ratio {tuning[lr]:.3f})")
    lr_best = min(tuning, key=tuning.get)
    print(f"chosen on validation: lr {lr_best:g}, {args.refine_iterations} iterations, "
          f"time_refine {args.time_refine}")

    # 3b. the chosen setting, once, on the test trajectories.
    refine = {}
    for label, data, forcing, k in (("64", test, d64.forcing, args.refine_samples),
                                    ("128", test128, d128.forcing, args.refine_samples_128)):
        ref = SpectralRefiner(sfno, viscosity=nu, frame_dt=frame_dt, forcing=forcing, cfg=refiner_cfg(lr_best))
        t0 = time.perf_counter()
        with torch.no_grad():  # the indicator over the whole test set, against the true errors
            estimate = torch.cat([ref.estimate(data.x[i:i + 8]) for i in range(0, len(data), 8)])
            errors = torch.cat([relative_lp(sfno(data.x[i:i + 8]), data.y[i:i + 8], spatial_dims=(1, 2),
                                            reduction="none") for i in range(0, len(data), 8)])
        out = ref.refine(data.x[:k], progress=True)
        e0 = relative_lp(out.initial_prediction, data.y[:k], spatial_dims=(1, 2), reduction="none")
        e1 = relative_lp(out.prediction, data.y[:k], spatial_dims=(1, 2), reduction="none")
        refine[label] = {"l2_before": float(e0.mean()), "l2_after": float(e1.mean()),
                         "ratio_per_sample": [round(v, 4) for v in (e1 / e0).tolist()],
                         "residual_before": float(out.residual_before.mean()),
                         "residual_after": float(out.residual_after.mean()),
                         "improved_samples": int((e1 < e0).sum()), "samples": len(e0),
                         "spearman_estimate_vs_error": spearman(estimate, errors), "seconds": time.perf_counter() - t0}
        print(f"refiner {label}²: {refine[label]}")

    # -- 4. report --------------------------------------------------------------------------------
    print("\n| model | real params | epochs | steps | train time [s] | test rel. L² 64² | zero-shot rel. L² 128² |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['params']:,} | {r['epochs']} | {r['steps']} | {r['train_s']:.0f} | "
              f"{r['test_l2_64']:.3e} | "
              f"{r['zero_shot_l2_128']:.3e} |")
    print("\n| SFNO + refiner | rel. L² before | rel. L² after | ratio | H⁻¹ residual before | after | "
          "samples improved | Spearman(estimate, error) | time [s] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in refine.items():
        print(f"| {label}² | {r['l2_before']:.3e} | {r['l2_after']:.3e} | {r['l2_after'] / r['l2_before']:.2f} | "
              f"{r['residual_before']:.3e} | {r['residual_after']:.3e} | {r['improved_samples']}/{r['samples']} | "
              f"{r['spearman_estimate_vs_error']:.2f} | {r['seconds']:.0f} |")
    ratio = rows["FNO3d (neuraloperator)"]["test_l2_64"] / rows["SFNO"]["test_l2_64"]
    print("\nRefiner learning rate chosen on validation: " + ", ".join(
        f"{lr:g} → ratio {v:.3f}" for lr, v in tuning.items()) + f"; chosen {lr_best:g}")
    print(f"\nFNO3d / SFNO test error ratio at equal budget: {ratio:.2f}; total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        atomic_write_text(args.json, json.dumps({"models": rows, "refiner": refine,
                                                     "refiner_validation": {str(k): v for k, v in tuning.items()},
                                                     "refiner_lr": lr_best, "args": {
            k: str(v) for k, v in vars(args).items()}}, indent=2))


if __name__ == "__main__":
    main()
