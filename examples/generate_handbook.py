"""Write the handbook examples: ``python examples/generate_handbook.py [--n N --seed S]``.

northwind_handbook.txt (raw text, task cpt) and northwind_qa.jsonl (context/question/answer, task qa).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tuneloop.demo.knowledge import write_handbook, write_qa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split(":")[0])
    parser.add_argument("--n", type=int, default=300, help="number of paragraphs / QA rows")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    args = parser.parse_args()
    here = Path(__file__).parent
    print(f"wrote {write_handbook(here / 'northwind_handbook.txt', args.n, args.seed)}")
    print(f"wrote {write_qa(here / 'northwind_qa.jsonl', args.n, args.seed)}")


if __name__ == "__main__":
    main()
