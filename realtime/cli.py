"""`momke-live`: the terminal front end (live features land with the live-engine issue)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("momke-live: the live engine is not built yet; see the README for `momke train` / `momke evaluate`.",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
