"""Tokenizer throughput: ms_clip vs open_clip on the same real-text corpus, in one run.

Both tokenizers turn batches of texts into [N, 77] id arrays (``ms_clip.tokenize`` vs open_clip's
``SimpleTokenizer.__call__``). "cold" is the first pass over the corpus with freshly built
tokenizers (empty BPE caches); "warm" is a second pass with the same instances (caches filled),
which is what zero-shot prompt sets and multi-epoch training see. The corpus is the one the
tokenizer test uses (tests/_helpers_text_corpus.py: docstrings and READMEs of installed packages).

Usage: python benchmarks/bench_tokenizer.py [--batch 256] [--limit 60000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from _helpers_text_corpus import collect_corpus  # noqa: E402
from _bench_common import finish_host_record, host_record  # noqa: E402

from ms_clip.tokenizer import CLIPTokenizer, tokenize  # noqa: E402


def _timed_pass(encode, batches):
    start = time.perf_counter()
    outputs = [encode(batch) for batch in batches]
    return time.perf_counter() - start, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="texts per tokenize call")
    parser.add_argument("--limit", type=int, default=60_000, help="corpus size (strings)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_tokenizer.json")
    args = parser.parse_args()
    host = host_record(what="bench_tokenizer.py")  # issue 16: every result carries the host

    from open_clip.tokenizer import SimpleTokenizer

    corpus = collect_corpus(minimum=1, limit=args.limit)
    batches = [corpus[i : i + args.batch] for i in range(0, len(corpus), args.batch)]
    n = len(corpus)
    print(f"corpus: {n} strings ({sum(map(len, corpus)) / n:.0f} chars on average), batches of {args.batch}")

    start = time.perf_counter()
    ours = CLIPTokenizer()
    build_ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = SimpleTokenizer()
    build_ref = time.perf_counter() - start

    runners = {
        "ms_clip": lambda batch: tokenize(batch, 77, tokenizer=ours),
        "open_clip": lambda batch: ref(batch, 77).numpy(),
    }
    results = {name: {} for name in runners}
    outputs = {}
    # Interleave the passes so that machine load affects both tokenizers alike.
    for phase in ("cold", "warm"):
        for name, run in runners.items():
            seconds, outputs[name] = _timed_pass(run, batches)
            results[name][phase] = {"seconds": seconds, "texts_per_s": n / seconds}
    results["ms_clip"]["build_seconds"] = build_ours
    results["open_clip"]["build_seconds"] = build_ref

    identical = all(np.array_equal(a, b) for a, b in zip(outputs["ms_clip"], outputs["open_clip"]))
    # open_clip treats "<start_of_text>" as special and ms_clip (like OpenAI) "<|startoftext|>",
    # so a corpus holding those spellings may differ in those rows only.
    print(f"outputs identical: {identical}")

    print(f"\n{'pass':<6} {'ms_clip texts/s':>16} {'open_clip texts/s':>18} {'ratio':>7}")
    ratios = {}
    for phase in ("cold", "warm"):
        a, b = results["ms_clip"][phase]["texts_per_s"], results["open_clip"][phase]["texts_per_s"]
        ratios[phase] = a / b
        print(f"{phase:<6} {a:>16,.0f} {b:>18,.0f} {ratios[phase]:>6.2f}x")
    print(f"build  {build_ours:>15.3f}s {build_ref:>17.3f}s")

    report = {
        "corpus_strings": n,
        "batch": args.batch,
        "results": results,
        "speed_ratio_ms_clip_over_open_clip": ratios,
        "outputs_identical": identical,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "host": finish_host_record(host),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
