"""Write the reward-model demo's preference pairs: ``python examples/generate_support_preferences.py [--n N --seed S --out PATH --ratings]``.

Each row is a support ticket and two replies; the chosen one is polite, cites the ticket id and stays
under 60 words, the rejected one breaks one or two of these (see ``tuneloop.demo.preferences``).
With ``--ratings`` each pair is written as two rated answers instead (format ``ratings``, for KTO).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tuneloop.demo.preferences import write_preference_pairs, write_ratings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split(":")[0])
    parser.add_argument("--n", type=int, default=300, help="number of preference pairs (one ticket each)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same file)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("support_preferences.jsonl"))
    parser.add_argument("--ratings", action="store_true", help="write each pair as two rated answers (good, bad)")
    args = parser.parse_args()
    if args.ratings:
        path = write_ratings(args.out, n=args.n, seed=args.seed)
        print(f"wrote {2 * args.n} rated answers to {path}")
    else:
        path = write_preference_pairs(args.out, n=args.n, seed=args.seed)
        print(f"wrote {args.n} preference pairs to {path}")


if __name__ == "__main__":
    main()
