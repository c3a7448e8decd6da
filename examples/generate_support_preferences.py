"""Write the reward-model demo's preference pairs: ``python examples/generate_support_preferences.py [--n N --seed S --out PATH --ratings]``.

Each row is a support ticket and two replies; the chosen one is polite, cites the ticket id and stays
under 60 words, the rejected one breaks one or two of these (see ``tuneloop.demo.preferences``).
With ``--ratings`` each pair is written as two rated answers instead (format ``ratings``, for KTO); with
``--sent`` as the reply an agent sent, the chosen or the rejected one at even odds (format
``prompt_completion``: the SFT data of the alignment demo, a model that keeps the rule about half the time).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tuneloop.demo.preferences import write_preference_pairs, write_ratings, write_sent_replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split(":")[0])
    parser.add_argument("--n", type=int, default=300, help="number of preference pairs (one ticket each)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same file)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("support_preferences.jsonl"))
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--ratings", action="store_true", help="write each pair as two rated answers (good, bad)")
    kind.add_argument("--sent", action="store_true", help="write the replies agents sent (most too long) for SFT")
    args = parser.parse_args()
    if args.sent:
        path = write_sent_replies(args.out, n=args.n, seed=args.seed)
        print(f"wrote {args.n} sent replies to {path}")
    elif args.ratings:
        path = write_ratings(args.out, n=args.n, seed=args.seed)
        print(f"wrote {2 * args.n} rated answers to {path}")
    else:
        path = write_preference_pairs(args.out, n=args.n, seed=args.seed)
        print(f"wrote {args.n} preference pairs to {path}")


if __name__ == "__main__":
    main()
