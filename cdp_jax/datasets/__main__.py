"""python -m cdp_jax.datasets {list, generate NAME [--steps N] [--dataset-id ID] [--seed S] [--overwrite]}"""
from __future__ import annotations

import argparse
import sys
import time

from cdp_jax.datasets.registry import GENERATORS, generate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdp_jax.datasets", description="Generate Minari datasets offline.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the generators")
    gen = sub.add_parser("generate", help="generate a dataset under $MINARI_DATASETS_PATH")
    gen.add_argument("name", help=f"one of {sorted(GENERATORS)}")
    gen.add_argument("--steps", type=int, default=None, help="number of transitions (default: the generator's)")
    gen.add_argument("--dataset-id", default=None, help="Minari id to write (default: local/...)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that id")
    args = parser.parse_args(argv)
    if args.command == "list":
        for g in GENERATORS.values():
            print(f"{g.name:18s} {g.dataset_id:28s} {g.default_steps:>9d} steps  {g.summary}")
        return 0
    start = time.time()
    try:
        path = generate(args.name, args.dataset_id, args.steps, args.seed, args.overwrite)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} in {time.time() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
