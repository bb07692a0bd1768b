"""``fastmlp bench``: its checks and its output; the timing is
:mod:`fastmlp.bench`'s."""

from fastmlp.errors import UsageError


def cmd_bench(args):
    import json

    from fastmlp import bench
    from fastmlp.backends.numba import isa

    rows = [row for row in bench.BENCH_ROWS if not args.quick or row[0] == (784, 30, 10)]
    backends = args.backends
    if isinstance(backends, str):
        backends = [backends]
    if backends and "torch" in backends and not bench.torch_available():
        raise UsageError("--backends torch: PyTorch is not installed (pip install torch)")
    if backends and "jax" in backends and not bench.jax_available():
        raise UsageError("--backends jax: JAX is not installed (pip install jax)")
    isas = [args.isa] if isinstance(args.isa, str) else list(dict.fromkeys(args.isa))
    if backends and "numba" not in backends and isas != ["host"]:
        raise UsageError(f"--isa {','.join(isas)}: only the numba rows have an ISA to choose; add numba to --backends")
    if "avx2" in isas:
        env, reason = isa.avx2_environment()
        if env is None:
            raise UsageError(f"--isa avx2: {reason}")
    info = bench.machine()
    results = bench.run_bench(rows, backends=backends, repeats=args.repeats, isas=isas, compile=args.compile)
    if args.json:
        print(json.dumps({"machine": info, "rows": results}, indent=2))
    elif args.markdown:
        print(bench.format_markdown(results, info))
    else:
        print(bench.format_text(results, info))
    return 0
