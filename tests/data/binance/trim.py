"""Regenerate the trimmed Binance depth fixtures from the hftbacktest recordings.

Usage (from the project root)::

    python tests/data/binance/trim.py /work/shared/data/hftbacktest

Keeps only the diff-depth stream lines and the REST depth snapshot line of each recording,
byte for byte (``<local receive ns> <raw JSON>``), and drops bookTicker and trade lines.
Standard library only, so it runs without the dev venv. The gzip output is deterministic
(level 9, no file name, mtime 0): rerunning it reproduces the committed files bit for bit.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (recording under the source dir, fixture written next to this script)
FILES: tuple[tuple[str, str], ...] = (
    ("spot/btcusdt_20240808.gz", "spot_btcusdt_20240808_depth.gz"),
    ("usdm/btcusdt_20240808.gz", "usdm_btcusdt_20240808_depth.gz"),
)


def keep(line: bytes) -> bool:
    """True for a diff-depth stream message or the REST depth snapshot."""
    _, _, raw = line.partition(b" ")
    msg = json.loads(raw)
    if "lastUpdateId" in msg:
        return True
    # Combined-stream envelope: {"stream": "btcusdt@depth@100ms", "data": {...}}.
    return "@depth" in msg.get("stream", "") and msg["data"].get("e") == "depthUpdate"


def trim(src: Path, dst: Path) -> tuple[int, int]:
    """Write the kept lines of ``src`` to ``dst``; returns (lines read, lines kept)."""
    read = kept = 0
    # filename="" and mtime=0 keep the gzip header free of anything machine-specific.
    with (
        gzip.open(src, "rb") as fin,
        dst.open("wb") as raw_out,
        gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw_out, mtime=0) as out,
    ):
        for line in fin:
            read += 1
            if keep(line):
                kept += 1
                out.write(line)
    return read, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the hftbacktest data dir (spot/, usdm/)")
    args = parser.parse_args()
    for rel, name in FILES:
        read, kept = trim(args.source / rel, HERE / name)
        print(f"{rel}: {read} lines -> {name}: {kept} lines")


if __name__ == "__main__":
    main()
