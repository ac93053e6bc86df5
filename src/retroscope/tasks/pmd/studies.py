"""The studies of Shvetsov-Shilovski & Lein (2023) on our data (``retroscope pmd study ...``).

Each study trains and scores through the shared pipeline (``train``, ``evaluate``), writes
``OUT/<study>.json`` and a figure, and puts the paper's numbers beside ours:

- :func:`sample_size`: MAE_R against the number of training maps with the paper's fit
  MAE(N) = a N^b + c (Sec. III, Fig. 2b) refitted on ours; on a CEP set this is the ``cep``
  study (the paper's fit a = 7.241, b = -0.526, c = 0.075 is for random CEP).
- :func:`one_d`: the 1D CNN and the 4-layer perceptron on dP/dk_x (Sec. III: 0.27 / 0.16).
- :func:`alternatives`: the classical methods of Sec. V fitted on the training split and
  scored on the test split beside the network, with their seconds per map.
- :func:`transfer`: Table I: the base network on each new test set (MAE, share flagged OOD),
  the network after transfer learning on that set's training split (``init_from`` +
  ``freeze``), a new network trained on the same split alone, and the alternatives fitted on
  the base set.
- :func:`dictionary`: Sec. VI: a classifier of R in bins of 1 bohr on the first quadrant;
  the parts of 3 validation maps per (R class, intensity third) where the occlusion
  sensitivity of the true class's probability exceeds 0.2 of its maximum form a dictionary;
  the other validation maps are classified by the entry of least MSE on its pixels. The
  same with Grad-CAM and LIME maps, and with random rectangular patches of equal area.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from retroscope.io.atomic import write_json_atomic

#: Sec. III and Table I of the paper, for the side-by-side columns
PAPER = {
    "base_mae_r": 0.07, "base_mae_i_1e14": 0.05, "base_train_maps": 2250,
    "cep_mae_r": 0.18, "cep_fit": {"a": 7.241, "b": -0.526, "c": 0.075},
    "one_d": {"plain_cnn": 0.27, "mlp": 0.16},
    "alternatives_in_distribution": {"dc_mse": 0.06, "dc_sift": 0.054, "svm_hog": 0.13,
                                     "dt_hog": 0.10, "svm_sift": 0.32},
    "dictionary_accuracy": {"occlusion": (0.67, 0.72), "gradcam": 0.54, "lime": 0.59,
                            "random": 0.35},
    "table_1": {
        "columns": ["averaged", "r_8_12", "alpha_0_180", "cep_0_2pi", "heh"],
        "cnn": [0.83, 3.05, 0.90, 0.89, 1.69], "cnn_tl": [0.15, 0.06, 0.17, 0.23, 0.08],
        "dc_mse": [1.44, 5.10, 1.37, 1.38, 1.57], "dc_sift": [1.19, 3.57, 1.14, 0.71, 1.76],
        "svm_hog": [1.03, 2.15, 0.99, 1.18, 1.54], "dt_hog": [2.09, 2.07, 1.54, 1.52, 2.31],
        "tl_sets": [750, 600, 750, 750, 750], "frozen": [4, 3, 3, 3, 3],
        "lr": [1e-2, 1e-3, 1e-3, 1e-2, 1e-2],
        "new_cnn": [0.14, 0.11, 0.25, 0.31, 0.13]},
}


#: epochs a study's network may run: the clock (``minutes``) and early stopping end it, so
#: that a small training set gets as much compute as a large one (at 20 epochs, 80 maps
#: were still improving after 40 optimiser steps)
STUDY_EPOCHS = 400


def _train(data: Path, out: Path, minutes: float, view: dict | None = None,
           **overrides) -> Path:
    """Train the pmd network (or ``model``) on ``data`` into ``out`` for ``minutes`` (kept if
    it is there already)."""
    from retroscope.train.config import train_config
    from retroscope.train.fit import train

    if (out / "train_summary.json").exists():
        return out
    task = _task(data, view)
    if overrides.get("epochs") is None and not overrides.get("recipe"):
        overrides["epochs"] = STUDY_EPOCHS  # a recipe brings its own
    cfg = train_config(task, data, max_minutes=minutes, view=view or {}, **overrides)
    train(task, cfg, out, overwrite=True, progress=False)
    return out


def _score(run: Path, data: Path, split: str = "test") -> dict:
    """MAE of R and I, interval coverage and OOD share of ``run`` on ``split`` of ``data``."""
    from retroscope.evaluate.report import evaluate

    m = evaluate(run, data, split, out=run / f"eval-{Path(data).name}", progress=False)
    tm = m["task_metrics"]
    return {"mae_r_bohr": tm["r_abs_error_bohr"]["mean"],
            "mae_i_1e14_w_cm2": tm["intensity_abs_error_1e14_w_cm2"]["mean"],
            "coverage_r": m["targets"]["r_bohr"]["coverage"],
            "ood_fraction": m["ood_fraction"], "n_test": m["n"],
            "ms_per_map": m["inference_ms_per_sample"]}


def _task(data: Path, view: dict | None = None):
    """The pmd task as ``data`` was simulated (its manifest's settings), read with ``view``."""
    from retroscope.core.registry import get_task
    from retroscope.data.shards import Manifest

    return get_task("pmd").with_config(**Manifest.load(Path(data)).config, **(view or {}))


def _split(data: Path, split: str, view: dict | None = None):
    from retroscope.data.dataset import ShardDataset

    task = _task(data, view)
    ds = ShardDataset(data, task, split, in_memory=True)
    maps = [ds.observable(i) for i in range(len(ds))]
    params = {k: np.asarray(v) for k, v in ds.params.items()}
    ds.close()
    return task, maps, params


def mae_fit(n, mae) -> dict:
    """Least-squares MAE(N) = a N^b + c (Sec. III) with a, c >= 0, b < 0 (at least 3 points;
    the studies fit 4 or more, since 3 fix the curve exactly)."""
    from scipy.optimize import curve_fit

    n, mae = np.asarray(n, float), np.asarray(mae, float)
    popt, _ = curve_fit(lambda x, a, b, c: a * x ** b + c, n, mae,
                        p0=(mae[0] * n[0] ** 0.5, -0.5, 0.5 * mae.min()),
                        bounds=([0, -3, 0], [np.inf, 0, np.inf]), maxfev=20000)
    a, b, c = (float(v) for v in popt)
    out = {"a": a, "b": b, "c": c}
    target = 0.1
    out["n_for_mae_0.1"] = float(((target - c) / a) ** (1 / b)) if c < target else None
    return out


def sample_size(data: Path, out: Path, sizes: list[int], minutes: float,
                recipe: str | None = None, name: str = "sample-size",
                epochs: int | None = None) -> dict:
    """MAE_R on the test split of ``data`` after training on the first N training maps, each
    for ``epochs`` (the paper: 30) within ``minutes``, or (None) for ``minutes`` alone."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sizes:
        run = _train(data, out / f"n{n}", minutes, limit_train=n, recipe=recipe, epochs=epochs)
        summary = json.loads((run / "train_summary.json").read_text())
        rows.append({"n_train": int(summary["n_train"]), "epochs_run": summary["epochs_run"],
                     "train_seconds": summary["train_seconds"], **_score(run, data)})
    result = {"study": name, "data": str(data), "minutes_per_run": minutes, "recipe": recipe,
              "epochs": epochs,
              "rows": rows, "paper": {"base_mae_r": PAPER["base_mae_r"],
                                      "base_train_maps": PAPER["base_train_maps"],
                                      "cep_mae_r": PAPER["cep_mae_r"],
                                      "cep_fit": PAPER["cep_fit"]}}
    if len(rows) >= 4:  # three points fix a N^b + c exactly: no test of the form
        result["fit"] = mae_fit([r["n_train"] for r in rows], [r["mae_r_bohr"] for r in rows])
    _learning_curve(result, out / f"{name}.png")
    write_json_atomic(out / f"{name}.json", result)
    return result


def one_d(data: Path, out: Path, minutes: float) -> dict:
    """The 1D CNN (plain_cnn on 256 points) and the perceptron (three hidden layers of 512)
    on dP/dk_x, beside the 2D network trained as long."""
    out.mkdir(parents=True, exist_ok=True)
    view = {"input": "dp_dkx"}
    runs = {"plain_cnn_2d": _train(data, out / "cnn2d", minutes),
            "plain_cnn_1d": _train(data, out / "cnn1d", minutes, view=view),
            "mlp_1d": _train(data, out / "mlp1d", minutes, view=view, model="mlp",
                             model_kwargs={"input_size": [256], "width": 512, "depth": 3})}
    result = {"study": "one-d", "data": str(data), "minutes_per_run": minutes,
              "rows": {k: _score(v, data) for k, v in runs.items()},
              "paper": {"plain_cnn_1d": PAPER["one_d"]["plain_cnn"],
                        "mlp_1d": PAPER["one_d"]["mlp"], "plain_cnn_2d": PAPER["base_mae_r"]}}
    write_json_atomic(out / "one-d.json", result)
    return result


def fit_alternatives(train_data: Path, methods: list[str]) -> dict:
    """Each alternative fitted on the training split of ``train_data``: {method: (fitted,
    seconds to fit, training maps)}."""
    task, train_maps, train_params = _split(train_data, "train")
    fitted = {}
    for method in methods:
        alt = task.baseline(method=method)
        t0 = time.perf_counter()
        alt.fit(train_maps, train_params)
        fitted[method] = (alt, time.perf_counter() - t0, len(train_maps))
    return fitted


def score_fitted(fitted: dict, test_data: Path, max_test: int | None = None) -> dict:
    """MAE_R, MAE_I and ms per map of the fitted alternatives on the test split of
    ``test_data``."""
    task, test_maps, test_params = _split(test_data, "test")
    if max_test is not None:
        test_maps = test_maps[:max_test]
        test_params = {k: v[:max_test] for k, v in test_params.items()}
    rows = {}
    for method, (alt, fit_s, n_train) in fitted.items():
        t0 = time.perf_counter()
        guess = alt.predict(test_maps)
        per_map = (time.perf_counter() - t0) / max(len(test_maps), 1)
        errors = task.metrics(test_params, guess)
        rows[method] = {"mae_r_bohr": float(errors["r_abs_error_bohr"].mean()),
                        "mae_i_1e14_w_cm2": float(errors["intensity_abs_error_1e14_w_cm2"].mean()),
                        "fit_s": fit_s, "ms_per_map": 1e3 * per_map,
                        "n_train": n_train, "n_test": len(test_maps)}
    return rows


def alternatives(data: Path, out: Path, run: Path | None, methods: list[str],
                 max_test: int | None = None) -> dict:
    """Sec. V in distribution: every alternative on the same splits as the network."""
    out.mkdir(parents=True, exist_ok=True)
    rows = score_fitted(fit_alternatives(data, methods), data, max_test)
    if run is not None:
        rows["network"] = _score(Path(run), data)
    result = {"study": "alternatives", "data": str(data), "rows": rows,
              "paper": PAPER["alternatives_in_distribution"]}
    write_json_atomic(out / "alternatives.json", result)
    return result


def transfer(base_data: Path, base_run: Path, sets: dict[str, Path], out: Path,
             minutes: float, frozen: int = 3, lr: float = 1e-3,
             methods: tuple[str, ...] = ("dc_mse", "dc_sift", "svm_hog", "dt_hog")) -> dict:
    """Table I: for each named set, the base network, the network after transfer learning on
    the set's training split, a new network on that split alone, and the alternatives fitted
    on the base set, all scored on the set's test split. ``OUT/transfer.json`` is rewritten
    after each column; finished runs are kept, so a rerun goes on where it stopped."""
    out.mkdir(parents=True, exist_ok=True)
    fitted = fit_alternatives(base_data, list(methods))
    result = {"study": "transfer", "base_data": str(base_data), "base_run": str(base_run),
              "frozen_blocks": frozen, "lr": lr, "minutes_per_run": minutes,
              "columns": {}, "paper": PAPER["table_1"]}
    for name, data in sets.items():
        col = {"cnn": _score(Path(base_run), data)}
        tl = _train(data, out / name / "tl", minutes, init_from=str(base_run), freeze=frozen,
                    lr=lr)
        col["cnn_tl"] = {**_score(tl, data), **_n_train(tl)}
        new = _train(data, out / name / "new", minutes, lr=lr)
        col["new_cnn"] = {**_score(new, data), **_n_train(new)}
        col.update(score_fitted(fitted, data))
        result["columns"][name] = col
        write_json_atomic(out / "transfer.json", result)
        _table_figure(result, out / "transfer.png")
    return result


def _n_train(run: Path) -> dict:
    summary = json.loads((run / "train_summary.json").read_text())
    return {"n_train": int(summary["n_train"]), "epochs_run": summary["epochs_run"],
            "train_seconds": summary["train_seconds"]}


def _class_probability(network, k: int):
    """The softmax probability of class ``k`` of a classifier (uncalibrated), one scalar per
    image: what Sec. VI's occlusion sensitivity follows."""
    import torch
    from torch import nn

    class Probability(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.network(x), dim=1)[:, k]

    return Probability().eval()


def dictionary_masks(network, images: np.ndarray, classes: np.ndarray, method: str,
                     threshold: float = 0.2) -> np.ndarray:
    """Boolean masks (n, H, W): where ``method``'s attribution to each image's class exceeds
    ``threshold`` of its maximum."""
    from retroscope.explain.methods import attribute_model

    masks = []
    for image, k in zip(images, classes):
        a = attribute_model(_class_probability(network, int(k)), image[None], method)[0]
        peak = a.max()
        masks.append(a > threshold * peak if peak > 0 else np.zeros(a.shape, bool))
    return np.stack(masks)


def dictionary_classify(entries: np.ndarray, masks: np.ndarray, entry_classes: np.ndarray,
                        images: np.ndarray) -> np.ndarray:
    """The class of the dictionary entry whose masked pixels differ least (MSE) from the same
    pixels of each image; entries with an empty mask are skipped."""
    keep = masks.reshape(len(masks), -1).any(axis=1)
    e, m, c = entries[keep], masks[keep].astype(np.float64), entry_classes[keep]
    x = images.reshape(len(images), -1).astype(np.float64)
    e, m = e.reshape(len(e), -1).astype(np.float64), m.reshape(len(m), -1)
    # sum over the mask of (x - e)^2 / |mask|, all pairs at once
    d2 = ((x ** 2) @ m.T - 2 * x @ (e * m).T + ((e ** 2) * m).sum(1)[None]) / m.sum(1)[None]
    return c[np.argmin(d2, axis=1)]


def random_patches(areas, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Masks (n, H, W) of random rectangular patches, each the size of the occlusion window
    (an eighth of each side), placed until each mask covers ``areas[i]`` pixels: Sec. VI's
    "random parts of the momentum distributions with the same total area"."""
    h, w = max(shape[0] // 8, 1), max(shape[1] // 8, 1)
    masks = np.zeros((len(areas), *shape), bool)
    for mask, area in zip(masks, areas):
        while mask.sum() < area:
            r, c = rng.integers(0, shape[0] - h + 1), rng.integers(0, shape[1] - w + 1)
            mask[r:r + h, c:c + w] = True
    return masks


def dictionary(data: Path, out: Path, minutes: float, per_cell: int = 3,
               methods: tuple[str, ...] = ("occlusion", "gradcam", "lime"),
               random_draws: int = 10, seed: int = 0) -> dict:
    """Sec. VI (see the module docstring); accuracies on the validation maps left out of the
    dictionary."""
    from retroscope.core.registry import learner_of

    out.mkdir(parents=True, exist_ok=True)
    view = {"classify_r": True, "quadrant": True}
    run = _train(data, out / "classifier", minutes, view=view)
    task, maps, params = _split(data, "val", view)
    network = learner_of(task).predictor(run).network
    images = np.stack([task.model_input(m)[0] for m in maps])
    classes = task.targets.encode(params)
    intensity = params["intensity_w_cm2"]
    lo, hi = task.space["intensity_w_cm2"].low, task.space["intensity_w_cm2"].high
    thirds = np.clip(((intensity - lo) / max(hi - lo, 1e-30) * 3).astype(int), 0, 2)
    rng = np.random.default_rng(seed)
    chosen = []
    for k in range(task.targets.n_classes):
        for t in range(3):
            cell = np.flatnonzero((classes == k) & (thirds == t))
            chosen.extend(rng.choice(cell, min(per_cell, len(cell)), replace=False).tolist())
    chosen = np.array(sorted(chosen))
    rest = np.setdiff1d(np.arange(len(images)), chosen)
    if len(rest) == 0:
        raise ValueError(f"{data}: every validation map went into the dictionary; the "
                         f"validation split needs more than {len(chosen)} maps")
    predicted = learner_of(task).predictor(run).predict_inputs(images[rest][:, None]).index
    result = {"study": "dictionary", "data": str(data), "run": str(run),
              "dictionary_maps": int(len(chosen)), "classified_maps": int(len(rest)),
              "classifier_accuracy": float(np.mean(predicted == classes[rest])),
              "accuracy": {}, "mask_area_fraction": {}}
    area = None
    for method in methods:
        masks = dictionary_masks(network, images[chosen][:, None], classes[chosen], method)
        guess = dictionary_classify(images[chosen], masks, classes[chosen], images[rest])
        result["accuracy"][method] = float(np.mean(guess == classes[rest]))
        result["mask_area_fraction"][method] = float(masks.mean())
        if method == "occlusion":
            area = masks.reshape(len(masks), -1).sum(1)
    if area is not None:
        draws = [float(np.mean(dictionary_classify(
            images[chosen], random_patches(area, images.shape[1:], rng), classes[chosen],
            images[rest]) == classes[rest])) for _ in range(random_draws)]
        result["accuracy"]["random"] = float(np.mean(draws))
        result["random_accuracy_range"] = [float(min(draws)), float(max(draws))]
    result["paper"] = PAPER["dictionary_accuracy"]
    write_json_atomic(out / "dictionary.json", result)
    return result


def _learning_curve(result: dict, path: Path) -> None:
    """MAE_R against training maps, ours and the fits."""
    from matplotlib.ticker import NullFormatter

    from retroscope.plots import figure, save

    n = np.array([r["n_train"] for r in result["rows"]], float)
    mae = np.array([r["mae_r_bohr"] for r in result["rows"]], float)
    fig, (ax,) = figure()
    ax.plot(n, mae, "o", label="retroscope")
    grid = np.geomspace(max(n.min(), 10), max(n.max(), 3000), 100)
    if "fit" in result:
        f = result["fit"]
        ax.plot(grid, f["a"] * grid ** f["b"] + f["c"], "-", label="fit a N^b + c (ours)")
    p = PAPER["cep_fit"]
    ax.plot(grid, p["a"] * grid ** p["b"] + p["c"], "--", label="paper's fit (random CEP)")
    ax.plot([PAPER["base_train_maps"]], [PAPER["base_mae_r"]], "s",
            label="paper, CEP 0 (2,250 maps)")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training maps")
    ax.set_ylabel("MAE of R on the test split (bohr)")
    ax.legend()
    save(fig, path)


#: Table I's rows as the figure draws them: (key in a column, label)
TABLE_ROWS = (("cnn", "CNN"), ("cnn_tl", "CNN + TL"), ("new_cnn", "new CNN"),
              ("dc_mse", "DC + MSE"), ("dc_sift", "DC + SIFT"), ("svm_hog", "SVM + HOG"),
              ("dt_hog", "DT + HOG"))


def _table_figure(result: dict, path: Path) -> None:
    """Table I as bars: MAE_R per column and method, ours (filled) beside the paper's
    (hatched) where the column has the paper's name."""
    from retroscope.plots import figure, save

    columns = list(result["columns"])
    paper = result.get("paper", {})
    fig, (ax,) = figure(panel_size_in=(max(6.0, 1.8 * len(columns)), 4.0))
    width = 0.8 / len(TABLE_ROWS)
    x = np.arange(len(columns))
    for j, (key, label) in enumerate(TABLE_ROWS):
        ours = [result["columns"][c].get(key, {}).get("mae_r_bohr", np.nan) for c in columns]
        bars = ax.bar(x + (j - len(TABLE_ROWS) / 2 + 0.5) * width, ours, width * 0.5,
                      label=label, color=f"C{j}")
        if key in paper and "columns" in paper:
            theirs = [paper[key][paper["columns"].index(c)] if c in paper["columns"]
                      else np.nan for c in columns]
            ax.bar(np.asarray([b.get_x() for b in bars]) + width * 0.5, theirs, width * 0.5,
                   color="none", edgecolor=f"C{j}", hatch="//")
    ax.set_xticks(x, columns)
    ax.set_yscale("log")
    ax.set_xlabel("test set (hatched: the paper's Table I)")
    ax.set_ylabel("MAE of R (bohr)")
    ax.legend(ncol=4, fontsize="small")
    save(fig, path)
