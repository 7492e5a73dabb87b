"""Benchmark physim.optim: training optimizers, CBO vs CMA-ES vs Adam, regularised neural ODEs.

Panels (each with three seeds, in one run):

(a) Training by name through the shared training loop: a small MLP regression and a
    small FNO-style 1-D spectral operator (script-local: no FNO has landed on main yet)
    learning the mass-spring chain's response (initial velocities → displacements after
    20 control steps, generated here with physim's Warp chain). Final validation loss and
    wall time for Adam, AdamW, Adan, Lion, SophiaH, AdaBelief, AdaHessian, diffGrad, AdamP,
    EXAdam and MeZO; each optimizer's lr is the best of a 3-point grid on seed 0.
(b) Global optimisation: CBO vs CMA-ES (cmaes package, IPOP restarts) vs multi-start Adam
    on shifted Rastrigin and Ackley in 2–100 dimensions at an equal evaluation budget;
    success = ‖x − x*‖∞ < 0.25.
(c) Neural ODE on the cubic spiral: training time, function evaluations (NFE) and
    prediction time of a full-trajectory solve, with and without the local
    error/stiffness regularisation.

Command (writes docs/bench_optimizers_{a,b,c}.png and out/bench_optimizers/results.json):

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_optimizers.py   # ~1 h, 2 busy cores
    (results.json is saved after every job; the same command resumes a killed run)
    .venv/bin/python scripts/bench_optimizers.py --quick    # a smoke run (~1 min)
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from physim.io.atomic import atomic_write_text

OPTIMIZERS = ["adam", "adamw", "adan", "lion", "sophiah", "adabelief", "adahessian", "diffgrad", "adamp", "exadam",
              "mezo"]
# Centre of each optimizer's 3-point lr grid (×1/3, ×1, ×3): the packages' recommended scale.
LR_CENTRE = {"adam": 3e-3, "adamw": 3e-3, "adan": 3e-3, "lion": 3e-4, "sophiah": 3e-2, "adabelief": 3e-3,
             "adahessian": 3e-2, "diffgrad": 3e-3, "adamp": 3e-3, "exadam": 3e-3, "mezo": 1e-3}
REPO = Path(__file__).resolve().parents[1]


class Store:
    """results.json, rewritten atomically after every finished job so a killed run resumes where it stopped."""

    def __init__(self, path: Path, results: dict):
        self.path, self.results = path, results

    def get(self, *keys):
        d = self.results
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    def put(self, value, *keys) -> None:
        d = self.results
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
        atomic_write_text(self.path, json.dumps(self.results, indent=1, default=float))


# --------------------------------------------------------------------------------------------
# Panel (a): training by name
# --------------------------------------------------------------------------------------------
class SpectralConv1d(nn.Module):
    """Fourier layer: multiply the lowest `modes` modes by learned complex weights."""

    def __init__(self, width: int, modes: int):
        super().__init__()
        self.modes = modes
        scale = 1.0 / width
        self.w = nn.Parameter(scale * torch.randn(width, width, modes, 2))

    def forward(self, x):  # x: (B, width, n)
        xf = torch.fft.rfft(x, dim=-1)
        w = torch.view_as_complex(self.w)
        out = torch.zeros_like(xf)
        out[..., : self.modes] = torch.einsum("bim,iom->bom", xf[..., : self.modes], w)
        return torch.fft.irfft(out, n=x.shape[-1], dim=-1)


class TinyFNO1d(nn.Module):
    """Lift → two (spectral + pointwise) layers with GELU → project; input/output (B, n, 2)."""

    def __init__(self, width: int = 16, modes: int = 6):
        super().__init__()
        self.lift, self.proj = nn.Linear(3, width), nn.Linear(width, 2)
        self.spec = nn.ModuleList([SpectralConv1d(width, modes) for _ in range(2)])
        self.point = nn.ModuleList([nn.Conv1d(width, width, 1) for _ in range(2)])

    def forward(self, x):
        grid = torch.linspace(0, 1, x.shape[1]).expand(x.shape[0], -1).unsqueeze(-1)
        h = self.lift(torch.cat([x, grid], -1)).transpose(1, 2)
        for s, p in zip(self.spec, self.point):
            h = torch.nn.functional.gelu(s(h) + p(h))
        return self.proj(h.transpose(1, 2))


def chain_dataset(n: int, seed: int = 1234):
    """(initial velocities (n, P, 2) → displacements after 20 control steps (n, P, 2)) from the Warp chain."""
    from physim.springs import ChainConfig, WarpChain

    P = 16
    sim = WarpChain(ChainConfig(particle_count=P, substeps=10, stiffness=200.0, damping=0.2, gravity=0.0))
    gen = torch.Generator().manual_seed(seed)
    s = torch.linspace(0, 1, P, dtype=torch.float64)
    X, Y = [], []
    rest = sim.reset().x
    with torch.no_grad():
        for _ in range(n):
            coef = torch.randn(2, 3, generator=gen, dtype=torch.float64) / torch.arange(1, 4)
            v0 = torch.stack([sum(c[k] * torch.sin((k + 1) * math.pi * s) for k in range(3)) for c in coef], -1)
            state = sim.reset(velocity=v0)
            for _ in range(20):
                state = sim.step(state)
            X.append(v0)
            Y.append((state.x - rest) * 10.0)  # decimetres: O(1) targets
    return torch.stack(X).float(), torch.stack(Y).float()


def regression_dataset(n: int, seed: int = 4321):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 8, generator=gen) * 2 - 1
    y = torch.sin(3 * x[:, :1]) + x[:, 1:2] ** 2 - 0.5 * x[:, 2:3] * x[:, 3:4] + 0.3 * torch.cos(4 * x[:, 4:5])
    return x, y


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))


def train_once(task: str, name: str, lr: float, seed: int, data, epochs: int) -> dict:
    from physim.operators.training import TrainConfig, Trainer

    (xtr, ytr), (xva, yva) = data
    torch.manual_seed(seed)
    model = mlp(seed) if task == "mlp" else TinyFNO1d()
    loss_fn = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    valid_fn = lambda m, b: {"valid_loss": float(((m(b[0]) - b[1]) ** 2).mean() / (b[1] ** 2).mean())}  # noqa: E731
    curve: list[tuple[float, float]] = []
    t0 = [0.0]

    class Rec:
        def on_batch_end(self, trainer, step, loss):
            curve.append((time.perf_counter() - t0[0], loss))

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(run_dir=tmp, epochs=epochs, batch_size=32, optimizer=name, lr=lr, log="none",
                          progress=False, seed=seed, checkpoint_every=10_000)
        tr = Trainer(model, cfg, torch.utils.data.TensorDataset(xtr, ytr), torch.utils.data.TensorDataset(xva, yva),
                     loss_fn=loss_fn, valid_fn=valid_fn, callbacks=[Rec()])
        t0[0] = time.perf_counter()
        try:
            res = tr.fit()
        except Exception as exc:  # a diverged run is a result, not a crash of the benchmark
            return {"valid": math.inf, "seconds": time.perf_counter() - t0[0], "curve": curve,
                    "error": f"{type(exc).__name__}: {exc}"}
        wall = time.perf_counter() - t0[0]
    return {"valid": res.history[-1]["valid_loss"], "seconds": wall, "curve": curve}


def panel_a(seeds, quick: bool, store: Store) -> dict:
    from tqdm.auto import tqdm

    n = 96 if quick else 384
    chain = chain_dataset(n + n // 4)
    reg = regression_dataset(2 * n + n // 2)
    datasets = {
        "mlp": ((reg[0][: 2 * n], reg[1][: 2 * n]), (reg[0][2 * n :], reg[1][2 * n :])),
        "fno_chain": ((chain[0][:n], chain[1][:n]), (chain[0][n:], chain[1][n:])),
    }
    epochs = {"mlp": 4 if quick else 20, "fno_chain": 4 if quick else 30}
    names = [*OPTIMIZERS[:3], "mezo"] if quick else OPTIMIZERS
    out: dict = {}
    jobs = [(task, name) for task in datasets for name in names]
    for task, name in tqdm(jobs, desc="panel a", leave=False):
        done = store.get("a", task, name)
        if done is not None:
            out.setdefault(task, {})[name] = done
            continue
        grid = [LR_CENTRE[name] * f for f in (1 / 3, 1.0, 3.0)]
        tuned = {lr: train_once(task, name, lr, seeds[0], datasets[task], epochs[task])["valid"] for lr in grid}
        lr = min(tuned, key=lambda k: tuned[k] if math.isfinite(tuned[k]) else math.inf)
        runs = [train_once(task, name, lr, s, datasets[task], epochs[task]) for s in seeds]
        out.setdefault(task, {})[name] = {"lr": lr, "grid": {str(k): v for k, v in tuned.items()}, "runs": runs}
        store.put(out[task][name], "a", task, name)
    return out


# --------------------------------------------------------------------------------------------
# Panel (b): global optimisation
# --------------------------------------------------------------------------------------------
SHIFT = 1.3


def rastrigin(X):
    Z = X - SHIFT
    return 10 * Z.shape[-1] + (Z**2 - 10 * torch.cos(2 * math.pi * Z)).sum(-1)


def ackley(X):
    Z = X - SHIFT
    d = Z.shape[-1]
    return (-20 * torch.exp(-0.2 * torch.sqrt((Z**2).sum(-1) / d)) - torch.exp(torch.cos(2 * math.pi * Z).sum(-1) / d)
            + 20 + math.e)


def run_cbo(f, d, seed, budget, n_particles=200):
    from physim.optim import CBOConfig, cbo_minimize

    X0 = 6 * torch.rand(n_particles, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 3
    res = cbo_minimize(f, X0, CBOConfig(steps=budget // n_particles, dt=0.01, sigma=8.0, alpha=1e4, seed=seed))
    return res.consensus, res.n_evaluations


def run_cmaes(f, d, seed, budget):
    from cmaes import CMA

    rng = np.random.default_rng(seed)
    used, best_x, best_f, popsize = 0, None, math.inf, None
    while used < budget:  # IPOP: restart with a doubled population until the budget is spent
        es = CMA(mean=rng.uniform(-3, 3, d), sigma=2.0, bounds=np.array([[-5.0, 5.0]] * d),
                 population_size=popsize, seed=int(rng.integers(2**31)))
        popsize = es.population_size
        while used < budget and not es.should_stop():
            xs = np.stack([es.ask() for _ in range(es.population_size)])
            fs = f(torch.from_numpy(xs)).numpy()
            used += len(xs)
            es.tell(list(zip(xs, fs)))
            i = int(np.argmin(fs))
            if fs[i] < best_f:
                best_f, best_x = float(fs[i]), xs[i]
        popsize *= 2
    return torch.from_numpy(best_x), used


def run_adam(f, d, seed, budget, starts=200, lr=0.05):
    X = (6 * torch.rand(starts, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 3)
    X.requires_grad_(True)
    opt = torch.optim.Adam([X], lr=lr)
    for _ in range(budget // starts):
        opt.zero_grad()
        f(X).sum().backward()
        opt.step()
    with torch.no_grad():
        return X[f(X).argmin()].detach(), budget


def panel_b(seeds, quick: bool, store: Store) -> dict:
    from tqdm.auto import tqdm

    dims = [2, 10] if quick else [2, 10, 30, 100]
    out: dict = {}
    jobs = [(fn, d, m) for fn in ("rastrigin", "ackley") for d in dims for m in ("cbo", "cmaes", "adam")]
    for fname, d, method in tqdm(jobs, desc="panel b", leave=False):
        done = store.get("b", fname, str(d), method)
        if done is not None:
            out.setdefault(fname, {}).setdefault(str(d), {})[method] = done
            continue
        f = rastrigin if fname == "rastrigin" else ackley
        budget = {2: 20_000, 10: 100_000}.get(d, 200_000) if not quick else min(40_000, 10_000 * d)
        rows = []
        for s in seeds:
            t0 = time.perf_counter()
            x, used = {"cbo": run_cbo, "cmaes": run_cmaes, "adam": run_adam}[method](f, d, s, budget)
            err = float((x - SHIFT).abs().max())
            rows.append({"seed": s, "success": err < 0.25, "err_inf": err, "f": float(f(x[None])[0]),
                         "evaluations": used, "seconds": time.perf_counter() - t0})
        out.setdefault(fname, {}).setdefault(str(d), {})[method] = rows
        store.put(rows, "b", fname, str(d), method)
    return out


# --------------------------------------------------------------------------------------------
# Panel (c): neural ODE with and without local regularisation
# --------------------------------------------------------------------------------------------
class Windows(torch.utils.data.Dataset):
    def __init__(self, y, length):
        self.y, self.length = y, length

    def __len__(self):
        return self.y.shape[0] - self.length

    def __getitem__(self, i):
        return self.y[i], self.y[i : i + self.length]


def panel_c(seeds, quick: bool, settings: list[tuple[float, float]], store: Store) -> dict:
    """Train the spiral neural ODE for every (λ_err, λ_stiff) in `settings` (0, 0 = plain) and every seed."""
    from physim.operators.node import NeuralODE, spiral_data
    from physim.operators.training import TrainConfig, Trainer
    from tqdm.auto import tqdm

    t, y = spiral_data(1000, 25.0, dtype=torch.float32)
    length = 10
    tb = t[:length]
    windows = Windows(y, length)
    out: dict = {}
    for lam_err, lam_stiff in tqdm(settings, desc="panel c", leave=False):
        key = f"{lam_err:g},{lam_stiff:g}"
        if store.get("c", key) is not None:
            out[key] = store.get("c", key)
            continue
        rows = []
        for s in seeds:
            torch.manual_seed(s)
            model = NeuralODE(dim=2, hidden=50, cubic=True, rtol=1e-3, atol=1e-4)
            gen = torch.Generator().manual_seed(s)
            reg = lam_err > 0 or lam_stiff > 0

            def loss_fn(m, batch, gen=gen, reg=reg, lam_err=lam_err, lam_stiff=lam_stiff):
                y0, ys = batch
                pred = m(y0, tb).transpose(0, 1)
                loss = (pred - ys).abs().mean()
                if not reg:
                    return loss, {"nfe": m.last_nfe}
                r = m.regularization(n_samples=1, generator=gen)
                return loss + lam_err * r.error + lam_stiff * r.stiffness, {"nfe": m.last_nfe}

            with tempfile.TemporaryDirectory() as tmp:
                cfg = TrainConfig(run_dir=tmp, epochs=1 if quick else 6, batch_size=16, optimizer="adam", lr=1e-2,
                                  log="none", progress=False, seed=s, schedule="linear", checkpoint_every=10_000)
                t0 = time.perf_counter()
                hist = Trainer(model, cfg, windows, loss_fn=loss_fn).fit().history
                train_s = time.perf_counter() - t0
            model.eval()
            times = []
            with torch.no_grad():
                y0w = y[: len(windows)]
                ysw = torch.stack([y[i : i + length] for i in range(len(windows))])
                window_mae = float((model(y0w, tb).transpose(0, 1) - ysw).abs().mean())
                for _ in range(5):
                    t1 = time.perf_counter()
                    pred = model(y[:1], t)
                    times.append(time.perf_counter() - t1)
            rows.append({"seed": s, "train_seconds": train_s, "train_nfe_per_forward": hist[-1]["nfe"],
                         "predict_nfe": model.last_nfe, "predict_seconds": float(np.median(times)),
                         "window_mae": window_mae, "trajectory_mae": float((pred[:, 0] - y).abs().mean())})
        out[key] = rows
        store.put(rows, "c", key)
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _mean_std(xs):
    xs = np.asarray(xs, dtype=float)
    return float(np.mean(xs)), float(np.std(xs))


def report(results: dict, figdir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = []
    if "a" in results:
        fig, axes = plt.subplots(1, len(results["a"]), figsize=(6 * len(results["a"]), 4.2))
        axes = np.atleast_1d(axes)
        for ax, (task, per) in zip(axes, results["a"].items()):
            adam = _mean_std([r["valid"] for r in per["adam"]["runs"]])[0]
            adam_t = _mean_std([r["seconds"] for r in per["adam"]["runs"]])[0]
            lines += [f"\n**(a) {task}** (relative validation MSE after equal steps; mean ± std of 3 seeds)\n",
                      "| optimizer | lr | valid rel. MSE | / Adam | wall [s] | / Adam |", "|---|---|---|---|---|---|"]
            for name, d in per.items():
                v, vs = _mean_std([r["valid"] for r in d["runs"]])
                w, _ = _mean_std([r["seconds"] for r in d["runs"]])
                lines.append(f"| {name} | {d['lr']:.2g} | {v:.3g} ± {vs:.2g} | {v / adam:.2f} | {w:.2f} | "
                             f"{w / adam_t:.2f} |")
                c = d["runs"][0]["curve"]
                if c:
                    ct, cl = zip(*c)
                    k = max(1, len(cl) // 50)
                    sm = np.convolve(cl, np.ones(k) / k, mode="valid")
                    ax.plot(np.asarray(ct)[k - 1 :], sm, label=name, lw=1.2, ls="--" if name == "mezo" else "-")
            ax.set(xlabel="wall time [s]", ylabel="training loss (seed 0, smoothed)", yscale="log", title=task)
            ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(figdir / "bench_optimizers_a.png", dpi=80)
        plt.close(fig)
    if "b" in results:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for ax, (fname, per_d) in zip(axes, results["b"].items()):
            lines += [f"\n**(b) {fname}**, x* = {SHIFT}·1, start uniform in [-3, 3]^d, success ‖x − x*‖∞ < 0.25 "
                      "(successes / seeds, mean final f; evaluations per run)\n",
                      "| d | evaluations | CBO | CMA-ES (IPOP) | Adam (200 starts) |", "|---|---|---|---|---|"]
            dims = sorted(per_d, key=int)
            for m, mk in (("cbo", "o-"), ("cmaes", "s-"), ("adam", "^-")):
                ax.plot([int(d) for d in dims], [np.mean([r["success"] for r in per_d[d][m]]) for d in dims], mk,
                        label=m)
            for d in dims:
                cells = [f"{sum(r['success'] for r in per_d[d][m])}/{len(per_d[d][m])} "
                         f"(f̄ {np.mean([r['f'] for r in per_d[d][m]]):.3g})" for m in ("cbo", "cmaes", "adam")]
                lines.append(f"| {d} | {per_d[d]['cbo'][0]['evaluations']} | " + " | ".join(cells) + " |")
            ax.set(xscale="log", xlabel="dimension", ylabel="success rate", title=fname, ylim=(-0.05, 1.05))
            ax.legend()
        fig.tight_layout()
        fig.savefig(figdir / "bench_optimizers_b.png", dpi=80)
        plt.close(fig)
    if "c" in results:
        c = results["c"]
        keys = ("predict_nfe", "predict_seconds", "train_seconds", "window_mae", "trajectory_mae")
        base = {k: _mean_std([r[k] for r in c["0,0"]])[0] for k in keys}
        lines += ["\n**(c) neural ODE, cubic spiral** (mean ± std of 3 seeds; ratio to the unregularised model; "
                  "prediction = one dopri5 solve over [0, 25] s; window MAE = 10-point windows as trained; "
                  "trajectory MAE = free run from y(0))\n",
                  "| λ_err, λ_stiff | predict NFE | / plain | predict [ms] | / plain | train [s] | / plain "
                  "| window MAE | / plain | trajectory MAE | / plain |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for setting, rows in c.items():
            cells = []
            for k in keys:
                m, sd = _mean_std([r[k] for r in rows])
                scale = 1e3 if k == "predict_seconds" else 1.0
                cells += [f"{m * scale:.3g} ± {sd * scale:.2g}", f"{m / base[k]:.2f}"]
            lines.append(f"| {setting} | " + " | ".join(cells) + " |")
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        labels = list(c)
        for ax, k in zip(axes, ("predict_nfe", "predict_seconds", "window_mae")):
            vals = [[r[k] for r in c[v]] for v in labels]
            ax.bar(range(len(labels)), [np.mean(v) for v in vals], yerr=[np.std(v) for v in vals], color="#37a")
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
            ax.set_title(k)
            ax.set_xlabel("λ_err, λ_stiff")
        fig.tight_layout()
        fig.savefig(figdir / "bench_optimizers_c.png", dpi=80)
        plt.close(fig)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--panels", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test of the script")
    ap.add_argument("--node-settings", nargs="+", default=["0,0", "0.01,0", "0.1,0", "1,0", "0.1,0.01"],
                    help="panel c: 'lam_err,lam_stiff' pairs; '0,0' (the unregularised baseline) is always run")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "bench_optimizers")
    ap.add_argument("--figdir", type=Path, default=REPO / "docs")
    args = ap.parse_args()
    # Tiny tensors: one intra-op thread (extra threads only add wake-up latency on a shared machine).
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    previous = args.out / "results.json"
    if previous.exists():  # panels run separately accumulate in one report
        try:
            results = json.loads(previous.read_text())
        except ValueError:
            raise SystemExit(f"{previous}: not valid JSON; delete it to start afresh") from None
        if results.get("quick") != args.quick:
            results = {}
    if results.get("seeds") != args.seeds:
        results = {}
    results.update({"torch_threads": 1, "seeds": args.seeds, "quick": args.quick})
    store = Store(previous, results)
    if "a" in args.panels:
        results["a"] = panel_a(args.seeds, args.quick, store)
    if "b" in args.panels:
        results["b"] = panel_b(args.seeds, args.quick, store)
    if "c" in args.panels:
        settings = [tuple(float(v) for v in x.split(",")) for x in args.node_settings]
        if (0.0, 0.0) not in settings:
            settings.insert(0, (0.0, 0.0))
        results["c"] = panel_c(args.seeds, args.quick, settings, store)
    atomic_write_text(args.out / "results.json", json.dumps(results, indent=1, default=float))
    table = report(results, args.figdir)
    atomic_write_text(args.out / "tables.md", table)
    print(table)


if __name__ == "__main__":
    main()
