"""fastmlp's MLPClassifier and MLPRegressor against scikit-learn's, same
settings, same data, in one process: fit time and test score (accuracy, or
R^2 for regression), runs interleaved (scikit-learn, fastmlp, scikit-learn,
fastmlp, ...) so a busy machine slows both alike; medians over the repeats.

    python benchmarks/sklearn_side_by_side.py digits          # ships with scikit-learn
    python benchmarks/sklearn_side_by_side.py mnist           # needs FASTMLP_DATA
    python benchmarks/sklearn_side_by_side.py all --repeats 3 --backend numba

digits: 8x8 images, standard-scaled, 70/30 stratified split, hidden_layer_sizes=(64,),
200 iterations, sgd, adam and lbfgs (scikit-learn's other defaults).
mnist: 60000/10000, pixels / 255 as float64 and as float32 (the same array
for both; scikit-learn keeps float32 input float32), hidden_layer_sizes=(128,),
adam, learning_rate_init=0.001, batch_size=128, 3 iterations.
diabetes and make_regression (20000 x 50, noise 10): MLPRegressor after
StandardScaler, 75/25 split; lbfgs with (16,) and alpha 1, adam with (100,).
fastmlp's first fit in the process (which may compile or load the Numba
kernels) runs before the timed ones and is reported separately.

Prints a Markdown table with the CPU, the date and the load average.
"""

import argparse
import datetime
import os
import platform
import statistics
import time
import warnings

import numpy as np


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def digits_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), y_train, scaler.transform(X_test), y_test


def mnist_data(dtype=np.float64):
    from fastmlp import load_mnist

    X_train, y_train, X_test, y_test = load_mnist(download=False)
    return (X_train / dtype(255.0)).astype(dtype), y_train, (X_test / dtype(255.0)).astype(dtype), y_test


def regression_data(make):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = make()
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), y_train, scaler.transform(X_test), y_test


def diabetes_data():
    from sklearn.datasets import load_diabetes

    return regression_data(lambda: load_diabetes(return_X_y=True))


def make_regression_data():
    from sklearn.datasets import make_regression

    return regression_data(lambda: make_regression(20000, 50, noise=10, random_state=0))


REGRESSION = [dict(hidden_layer_sizes=(16,), solver="lbfgs", alpha=1.0),
              dict(hidden_layer_sizes=(100,), solver="adam", learning_rate_init=0.01, max_iter=200)]
MNIST = dict(hidden_layer_sizes=(128,), solver="adam", learning_rate_init=0.001, batch_size=128, max_iter=3)
#: name -> (data, "classifier" or "regressor", the settings of each row)
CASES = {
    "digits": (digits_data, "classifier",
               [dict(hidden_layer_sizes=(64,), solver=s, max_iter=200) for s in ("sgd", "adam", "lbfgs")]),
    "mnist": (mnist_data, "classifier", [MNIST]),
    "mnist-float32": (lambda: mnist_data(np.float32), "classifier", [MNIST]),
    "diabetes": (diabetes_data, "regressor", REGRESSION),
    "make_regression": (make_regression_data, "regressor", REGRESSION),
}


def timed_fit(make, X, y, X_test, y_test):
    model = make()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter, on both sides
        model.fit(X, y)
    seconds = time.perf_counter() - start
    return seconds, model.score(X_test, y_test)


def run(name, repeats, backend, n_threads=None):
    import sklearn.neural_network

    import fastmlp

    load, kind, settings_list = CASES[name]
    estimator = "MLPClassifier" if kind == "classifier" else "MLPRegressor"
    theirs, ours = getattr(sklearn.neural_network, estimator), getattr(fastmlp, estimator)
    X, y, X_test, y_test = load()
    rows = []
    for settings in settings_list:
        first, _ = timed_fit(lambda: ours(backend=backend, n_threads=n_threads, random_state=100, **settings),
                             X, y, X_test, y_test)
        times = {"scikit-learn": [], "fastmlp": []}
        accs = {"scikit-learn": [], "fastmlp": []}
        for seed in range(repeats):
            for who, make in (("scikit-learn", lambda: theirs(random_state=seed, **settings)),
                              ("fastmlp", lambda: ours(backend=backend, n_threads=n_threads, random_state=seed,
                                                       **settings))):
                seconds, acc = timed_fit(make, X, y, X_test, y_test)
                times[who].append(seconds)
                accs[who].append(acc)
                print(f"  {name} {settings['solver']} seed {seed} {who:12s} fit {seconds:7.2f} s  "
                      f"test score {acc:.4f}", flush=True)
        rows.append((name, settings, times, accs, first))
    return rows


def table(rows, backend, repeats, n_threads=None):
    lines = [f"CPU: {cpu_name()}; {os.cpu_count()} logical CPUs; fastmlp backend {backend}, n_threads {n_threads or 'default'}; "
             f"{datetime.date.today().isoformat()}; load average before the run "
             f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
             "",
             f"| data set | solver | settings | scikit-learn fit (s) | fastmlp fit (s) | speed-up | "
             f"scikit-learn test score | fastmlp test score |",
             "|---|---|---|---|---|---|---|---|"]
    for name, settings, times, accs, first in rows:
        sk_t, fm_t = statistics.median(times["scikit-learn"]), statistics.median(times["fastmlp"])
        shown = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "solver")
        lines.append(f"| {name} | {settings['solver']} | {shown} | {sk_t:.2f} | {fm_t:.2f} | {sk_t / fm_t:.1f}x | "
                     f"{statistics.median(accs['scikit-learn']):.4f} | {statistics.median(accs['fastmlp']):.4f} |")
    lines.append("")
    lines.append(f"Test score: accuracy (digits, mnist) or R^2 (diabetes, make_regression). "
                 f"Medians over {repeats} seeds, interleaved; fastmlp's first fit in the process (compile "
                 "or cache load included): " + ", ".join(f"{r[0]} {r[1]['solver']} {r[4]:.2f} s" for r in rows))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=[*CASES, "all"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="numba", choices=["numba", "numpy"])
    parser.add_argument("--n-threads", type=int, default=None, help="fastmlp's n_threads (default: Numba's)")
    args = parser.parse_args()
    names = list(CASES) if args.data == "all" else [args.data]
    rows = []
    for name in names:
        rows += run(name, args.repeats, args.backend, args.n_threads)
    print()
    print(table(rows, args.backend, args.repeats, args.n_threads))


if __name__ == "__main__":
    main()
