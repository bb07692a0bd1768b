"""The rows of :func:`fastmlp.bench.run_bench` as tables: Markdown (a
README's form, with the caption line) and aligned plain text for a terminal."""

from fastmlp.bench import epochs

COLUMNS = ("network", "batch", "dtype", "backend", "ISA", "s/epoch", "GFLOP/s", "speed-up vs numpy",
           "compile s")


def caption(info):
    """The one line naming the machine (``machine()``) and the date that heads a table."""
    def v(name):
        return info[name] or "not installed"
    return (f"{info['date']}, {info['cpu']}; Numba code: {info['isa']}; NumPy {info['numpy']} "
            f"({info['blas']}); Numba {v('numba')}, JAX {v('jax')}, PyTorch {v('torch')}; "
            f"seconds per {epochs.N_IMAGES:,}-image epoch, sigmoid + quadratic cost, plain SGD")


def _cells(r):
    return [r["sizes"], str(r["batch"]), r["dtype"], r["backend"], r.get("isa") or "-",
            f"{r['seconds']:.3f}", f"{r['gflops']:.1f}",
            "-" if r["speedup"] is None else f"{r['speedup']:.2f}x", _compile_cell(r)]


def _compile_cell(r):
    """``compile s``: seconds, and for numba the kernel variants compiled in brackets."""
    if r.get("compile_s") is None:
        return "-"
    if r.get("compile_variants") is None:
        return f"{r['compile_s']:.1f}"
    return f"{r['compile_s']:.1f} ({r['compile_variants']})"


def format_table(rows):
    """The rows of ``run_bench`` as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def format_markdown(rows, info):
    """A README's form: the caption line in italics, a blank line, the table."""
    return f"*{caption(info)}.*\n\n{format_table(rows)}"


def format_text(rows, info):
    """For a terminal: the caption and an aligned plain-text table."""
    body = [list(COLUMNS)] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i < 5 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
             for line in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = ["compile s: numba, the row's first run (prepare + train_batches + predict_proba) in a fresh "
             "process, the rows in order sharing one cache that starts empty, with the kernel variants it "
             "compiled in brackets (0: every variant came from the cache); jax, the jit of the whole epoch"]
    return "\n".join([caption(info), ""] + [line.rstrip() for line in lines] + [""] + notes)
