"""Benchmark: clv_pipeline.models vs lifetimes on a synthetic 1M-customer history.

Usage (see bench/README_models.md)::

    .venv/bin/python bench/models.py --customers 1000000 \
        --lifetimes-python /work/bench-venv/bin/python

The parent process generates the data (vectorised numpy, seeded BG/NBD purchases with
Gamma-Gamma spend over two years), writes it to an ``.npz`` file and runs each side in
its own subprocess, so every side reports a clean peak RSS. The lifetimes side runs under
the interpreter given by ``--lifetimes-python`` (lifetimes is archived and needs
pandas<2.2/numpy<2 + setuptools); the Pareto/NBD lifetimes fit runs in a separate
subprocess killed after ``--lifetimes-timeout`` seconds ("timeout").

Time-unit trap: our models work in days, so lifetimes is called with ``freq="D"``
(``summary_data_from_transaction_data(..., freq="D")``, ``customer_lifetime_value(...,
freq="D")``); with lifetimes' default ``freq="D"`` elsewhere but a weekly summary the
scale parameters would differ by a factor of 7.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DAYS = 730
START = dt.date(2023, 1, 1)
AS_OF = START + dt.timedelta(days=DAYS)
TRUE_BG = {"r": 0.8, "alpha": 36.0, "a": 0.6, "b": 4.5}
TRUE_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
HORIZON = 365.0
ANNUAL_RATE = 0.10


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------------------
# data generation (parent process; numpy only, no loop over customers)
# --------------------------------------------------------------------------------------
def generate(n: int, seed: int, path: Path) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.0, DAYS, n)  # first purchase time (days since START)
    t_obs = DAYS - start
    lam = rng.gamma(TRUE_BG["r"], 1.0 / TRUE_BG["alpha"], n)
    p = rng.beta(TRUE_BG["a"], TRUE_BG["b"], n)
    k = rng.geometric(p)
    n_events = rng.poisson(lam * t_obs)
    x = np.minimum(n_events, k)
    frac = rng.beta(np.maximum(x, 1), np.maximum(n_events - x, 0) + 1)
    last = np.where(x > 0, t_obs * frac, 0.0)
    # repeat purchase times: the x-th at `last`, the x-1 earlier ones uniform on (0, last)
    cust_rep = np.repeat(np.arange(n), x)
    is_last = np.zeros(cust_rep.shape[0], dtype=bool)
    ends = np.cumsum(x) - 1
    is_last[ends[x > 0]] = True
    u = rng.uniform(0.0, 1.0, cust_rep.shape[0])
    t_rep = np.where(is_last, last[cust_rep], u * last[cust_rep])
    cust = np.concatenate([np.arange(n), cust_rep])
    t_abs = np.concatenate([start, start[cust_rep] + t_rep])
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["v"], n)
    amount = np.round(rng.gamma(TRUE_GG["p"], 1.0 / nu[cust]), 2) + 0.01
    order = np.argsort(t_abs, kind="stable")
    np.savez(path, cust=cust[order].astype(np.int64), t=t_abs[order], amount=amount[order])
    return {"customers": float(n), "transactions": float(cust.shape[0])}


# --------------------------------------------------------------------------------------
# our side
# --------------------------------------------------------------------------------------
def _features_polars(data: Any) -> Any:
    import polars as pl

    micros = (data["t"] * 86_400e6).astype(np.int64)
    epoch = int(dt.datetime(START.year, START.month, START.day, tzinfo=dt.UTC).timestamp() * 1e6)
    tx = pl.DataFrame(
        {
            "customer_id": data["cust"],
            "occurred_at": micros + epoch,
            "amount": data["amount"],
        }
    ).with_columns(
        pl.col("customer_id").cast(pl.String),
        pl.col("occurred_at").cast(pl.Datetime("us", "UTC")),
        pl.int_range(pl.len()).cast(pl.String).alias("transaction_id"),
    )
    from clv_pipeline.features import compute_features

    tx = tx.with_columns(
        pl.col("occurred_at").dt.date().alias("event_date"),
        pl.lit("purchase").alias("revenue_kind"),
    )
    t0 = time.perf_counter()
    # the pipeline's own feature stage (event_date <= as_of; every synthetic row is before AS_OF)
    feats = compute_features(tx.lazy(), as_of=AS_OF).collect()
    t_feat = time.perf_counter() - t0
    # reference: polars' own speed for one bare group-by of the same rows by customer
    t0 = time.perf_counter()
    day = pl.col("event_date")
    tx.lazy().group_by("customer_id").agg(
        day.min().alias("first_day"),
        day.max().alias("last_day"),
        pl.len(),
        pl.col("amount").sum(),
    ).collect()
    return feats, t_feat, time.perf_counter() - t0


def run_ours(data_path: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from clv_pipeline.models import Patterns, discount_schedule, fit_and_predict, predicted_clv
    from clv_pipeline.models.base import validate_rft
    from clv_pipeline.models.bgnbd import MODEL as BG
    from clv_pipeline.models.clv import _predict_purchases
    from clv_pipeline.models.gamma_gamma import MODEL as GG
    from clv_pipeline.models.pareto_nbd import MODEL as PNBD

    data = np.load(data_path)
    feats, t_feat, t_floor = _features_polars(data)
    x = feats["frequency"].to_numpy()
    tx = feats["recency"].to_numpy()
    t_obs = feats["T"].to_numpy()
    m = feats["monetary_value"].to_numpy()
    times: dict[str, float] = {"features": t_feat, "polars_floor": t_floor}
    t0 = time.perf_counter()
    pat = Patterns.from_arrays(*validate_rft(x, tx, t_obs))
    times["compress"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bg = BG.fit([], [], [], patterns=pat)
    times["bgnbd_fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pn = PNBD.fit([], [], [], patterns=pat)
    times["pareto_fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gg = GG.fit(x, m)
    times["gg_fit"] = time.perf_counter() - t0
    px, ptx, pT, inv = pat.x, pat.tx, pat.T, pat.inverse
    # standalone calls, one per quantity (as lifetimes is timed)
    t0 = time.perf_counter()
    alive = BG.probability_alive(bg.params, px, ptx, pT)[inv]
    exp_p = BG.expected_purchases(bg.params, px, ptx, pT, horizon_days=HORIZON)[inv]
    value = GG.expected_customer_spend(gg.params, x, m)
    times["predict"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # discounted CLV: 12 monthly steps over 365 days, 10 %/year (the pipeline's defaults)
    clv = predicted_clv(BG, bg.params, px, ptx, pT, np.ones(pat.n_patterns))[inv] * value
    times["clv"] = time.perf_counter() - t0
    # the pipeline's path (fit_and_predict's predictions without days-to-next-purchase):
    # P(alive) shared by the expected purchases and the discounted CLV, per unique pattern
    t0 = time.perf_counter()
    shared = _predict_purchases(
        BG,
        bg.params,
        pat,
        discount_schedule(HORIZON, discount_rate=ANNUAL_RATE),
        discount_rate=ANNUAL_RATE,
        horizon_days=HORIZON,
        next_purchase=False,
    )
    value_shared = GG.expected_customer_spend(gg.params, x, m)
    clv_shared = shared.discounted * value_shared
    times["predict_clv"] = time.perf_counter() - t0
    same = bool(
        np.array_equal(alive, shared.p_alive)
        and np.array_equal(exp_p, shared.expected)
        and np.array_equal(clv, clv_shared)
    )
    t0 = time.perf_counter()
    run = fit_and_predict(x, tx, t_obs, m)
    times["fit_and_predict_total"] = time.perf_counter() - t0
    return {
        "times": times,
        "params": {"bgnbd": bg.params, "pareto_nbd": pn.params, "gamma_gamma": gg.params},
        "loglik": {"bgnbd": bg.log_likelihood, "pareto_nbd": pn.log_likelihood},
        "n_evaluations": {"bgnbd": bg.n_evaluations, "gamma_gamma": gg.n_evaluations},
        "n_patterns": pat.n_patterns,
        "n_customers": int(x.shape[0]),
        "selected": run.selected_model,
        "checks": {
            "mean_p_alive": float(alive.mean()),
            "mean_exp_purchases": float(exp_p.mean()),
            "total_clv": float(clv.sum()),
            "shared_path_identical": same,
        },
        "peak_rss_mb": _peak_rss_mb(),
    }


# --------------------------------------------------------------------------------------
# lifetimes side (runs under --lifetimes-python; lifetimes never imported elsewhere)
# --------------------------------------------------------------------------------------
def _lifetimes_summary(data_path: Path) -> tuple[Any, float]:
    import pandas as pd
    from lifetimes.utils import summary_data_from_transaction_data

    data = np.load(data_path)
    dates = pd.Timestamp(START) + pd.to_timedelta(data["t"] * 86_400e9, unit="ns")
    df = pd.DataFrame({"customer_id": data["cust"], "date": dates, "amount": data["amount"]})
    t0 = time.perf_counter()
    summary = summary_data_from_transaction_data(
        df,
        "customer_id",
        "date",
        monetary_value_col="amount",
        observation_period_end=pd.Timestamp(AS_OF) - pd.Timedelta(days=1),
        freq="D",
    )
    # lifetimes' T counts to observation_period_end inclusive; ours to AS_OF = end + 1 day
    summary["T"] = summary["T"] + 1
    return summary, time.perf_counter() - t0


def run_lifetimes(data_path: Path) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    summary, t_feat = _lifetimes_summary(data_path)
    times = {"features": t_feat}
    f, r, t_obs = summary["frequency"], summary["recency"], summary["T"]
    t0 = time.perf_counter()
    bgf = BetaGeoFitter(penalizer_coef=0.0).fit(f, r, t_obs)
    times["bgnbd_fit"] = time.perf_counter() - t0
    rep = summary[summary["frequency"] > 0]
    t0 = time.perf_counter()
    ggf = GammaGammaFitter(penalizer_coef=0.0).fit(rep["frequency"], rep["monetary_value"])
    times["gg_fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bgf.conditional_probability_alive(f, r, t_obs)
    bgf.conditional_expected_number_of_purchases_up_to_time(HORIZON, f, r, t_obs)
    ggf.conditional_expected_average_profit(summary["frequency"], summary["monetary_value"])
    times["predict"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ggf.customer_lifetime_value(
        bgf,
        f,
        r,
        t_obs,
        summary["monetary_value"],
        time=12,
        discount_rate=(1 + ANNUAL_RATE) ** (1 / 12) - 1,
        freq="D",
    )
    times["clv"] = time.perf_counter() - t0
    times["predict_clv"] = times["predict"] + times["clv"]
    p = bgf.params_
    q = ggf.params_
    return {
        "times": times,
        "params": {
            "bgnbd": {k: float(p[k]) for k in ("r", "alpha", "a", "b")},
            "gamma_gamma": {k: float(q[k]) for k in ("p", "q", "v")},
        },
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_lifetimes_pareto(data_path: Path) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from lifetimes import ParetoNBDFitter

    summary, _ = _lifetimes_summary(data_path)
    t0 = time.perf_counter()
    pnf = ParetoNBDFitter(penalizer_coef=0.0).fit(
        summary["frequency"], summary["recency"], summary["T"]
    )
    p = pnf.params_
    return {
        "times": {"pareto_fit": time.perf_counter() - t0},
        "params": {"pareto_nbd": {k: float(p[k]) for k in ("r", "alpha", "s", "beta")}},
        "peak_rss_mb": _peak_rss_mb(),
    }


# --------------------------------------------------------------------------------------
# orchestration and report
# --------------------------------------------------------------------------------------
def _worker(python: str, mode: str, data: Path, timeout: float | None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = Path(out.name)
    cmd = [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        mode,
        "--data",
        str(data),
        "--out",
        str(out_path),
    ]
    try:
        subprocess.run(cmd, check=True, timeout=timeout, env={**os.environ, "PYTHONPATH": ""})
    except subprocess.TimeoutExpired:
        return {"timeout": True}
    except subprocess.CalledProcessError as exc:
        return {"error": f"exit code {exc.returncode}"}
    result: dict[str, Any] = json.loads(out_path.read_text())
    out_path.unlink()
    return result


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}"


_LABELS = {
    "features": "features (+ compression)",
    "bgnbd_fit": "BG/NBD fit",
    "pareto_fit": "Pareto/NBD fit",
    "gg_fit": "Gamma-Gamma fit",
    "predict": "predictions",
    "clv": "discounted CLV",
    "predict_clv": "predictions + CLV",
}


def report(ours: dict[str, Any], lt: dict[str, Any], lt_pn: dict[str, Any]) -> str:
    lines = []
    o_times = dict(ours["times"])
    o_times["features"] = o_times["features"] + o_times["compress"]
    stages = ["features", "bgnbd_fit", "pareto_fit", "gg_fit", "predict", "clv", "predict_clv"]
    lt_times = {**lt.get("times", {}), **lt_pn.get("times", {})}
    lines.append(f"{'stage':<30}{'ours s':>10}{'lifetimes s':>14}{'speedup':>10}")
    for st in stages:
        o = o_times.get(st)
        lv = lt_times.get(st)
        if st == "pareto_fit" and lt_pn.get("timeout"):
            lcell, sp = "timeout", "-"
        else:
            lcell = _fmt(lv)
            sp = f"{lv / o:.1f}x" if lv and o else "-"
        label = _LABELS[st] + (" (shared)" if st == "predict_clv" else "")
        lines.append(f"{label:<30}{_fmt(o):>10}{lcell:>14}{sp:>10}")
    floor = o_times["polars_floor"]
    lines.append(f"{'polars group_by floor':<30}{floor:>10.2f}{'':>14}{'':>10}")
    common = ["features", "bgnbd_fit", "gg_fit", "predict_clv"]
    o_tot = sum(o_times[s] for s in common)
    if all(s in lt_times for s in common):
        l_tot = sum(lt_times[s] for s in common)
        label = "end-to-end (BG+GG+pred+CLV)"
        lines.append(f"{label:<30}{o_tot:>10.2f}{l_tot:>14.2f}{l_tot / o_tot:>9.1f}x")
    if all(s in lt_times for s in common + ["pareto_fit"]) and not lt_pn.get("timeout"):
        o_all = o_tot + o_times["pareto_fit"]
        l_all = sum(lt_times[s] for s in common + ["pareto_fit"])
        label = "end-to-end, all stages"
        lines.append(f"{label:<30}{o_all:>10.2f}{l_all:>14.2f}{l_all / o_all:>9.1f}x")
    lines.append(f"{'fit_and_predict (ours)':<30}{o_times['fit_and_predict_total']:>10.2f}")
    lines.append("")
    lines.append(
        f"peak RSS MB: ours {ours['peak_rss_mb']:.0f}, lifetimes "
        f"{lt.get('peak_rss_mb', float('nan')):.0f}, lifetimes pareto "
        f"{lt_pn.get('peak_rss_mb', float('nan')):.0f}"
    )
    lines.append(
        f"ours: compression {o_times['compress']:.2f} s of the features row; likelihood "
        f"evaluations BG/NBD {ours['n_evaluations']['bgnbd']}, Gamma-Gamma "
        f"{ours['n_evaluations']['gamma_gamma']}; shared path == standalone calls: "
        f"{ours['checks']['shared_path_identical']}"
    )
    lines.append("")
    lines.append(f"{'model.param':<22}{'ours':>14}{'lifetimes':>14}{'rel diff':>11}")
    lt_params = {**lt.get("params", {}), **lt_pn.get("params", {})}
    for model, params in ours["params"].items():
        for k, v in params.items():
            lv = lt_params.get(model, {}).get(k)
            rel = f"{abs(v - lv) / abs(lv):.1e}" if lv else "-"
            lcell = f"{lv:.6g}" if lv is not None else "-"
            lines.append(f"{model + '.' + k:<22}{v:>14.6g}{lcell:>14}{rel:>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-lifetimes", action="store_true")
    ap.add_argument(
        "--lifetimes-python",
        default=sys.executable,
        help="interpreter with lifetimes installed (see README_models.md)",
    )
    ap.add_argument(
        "--lifetimes-timeout",
        type=float,
        default=1200.0,
        help="seconds before the lifetimes Pareto/NBD fit is reported as timeout",
    )
    ap.add_argument("--json", type=Path, help="also write raw results here")
    ap.add_argument("--worker", choices=["ours", "lifetimes", "lifetimes_pareto"])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    if args.worker:
        fn = {
            "ours": run_ours,
            "lifetimes": run_lifetimes,
            "lifetimes_pareto": run_lifetimes_pareto,
        }[args.worker]
        args.out.write_text(json.dumps(fn(args.data)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "tx.npz"
        t0 = time.perf_counter()
        info = generate(args.customers, args.seed, data)
        print(
            f"generated {info['customers']:.0f} customers, {info['transactions']:.0f} "
            f"transactions in {time.perf_counter() - t0:.1f}s (seed {args.seed})"
        )
        ours = _worker(sys.executable, "ours", data, None)
        print(f"ours done: {ours['n_patterns']} unique patterns, selected {ours['selected']}")
        lt: dict[str, Any] = {}
        lt_pn: dict[str, Any] = {}
        if not args.skip_lifetimes:
            lt = _worker(args.lifetimes_python, "lifetimes", data, None)
            print("lifetimes done")
            lt_pn = _worker(args.lifetimes_python, "lifetimes_pareto", data, args.lifetimes_timeout)
            status = "timeout" if lt_pn.get("timeout") else lt_pn.get("error", "done")
            print("lifetimes pareto:", status)
    print()
    print(report(ours, lt, lt_pn))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"info": info, "ours": ours, "lifetimes": lt, "lifetimes_pareto": lt_pn}, indent=2
            )
        )
    return 0 if math.isfinite(ours["times"]["pareto_fit"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
