"""Write the demo's support-ticket export: ``python examples/generate_support_tickets.py [--n N --seed S --out PATH]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from tuneloop.demo.tickets import write_tickets_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split(":")[0])
    parser.add_argument("--n", type=int, default=600, help="number of tickets")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same file)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("support_tickets.csv"))
    args = parser.parse_args()
    path = write_tickets_csv(args.out, n=args.n, seed=args.seed)
    print(f"wrote {args.n} tickets to {path}")


if __name__ == "__main__":
    main()
