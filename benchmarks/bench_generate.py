"""Generation speed: ``codekiln.generate.complete`` (KV cache, prompt prefilled once) against
nanoGPT's ``generate`` (the whole context recomputed for every new token), on CPU.

Random-init models of the ``tiny`` and ``codeparrot-small`` shapes (speed does not depend on the
weights), batch 1 and 8, greedy, no stop strings, the same prompt; both must produce the same
token ids (checked on every row). Tokens/s counts generated tokens of all rows.

    OMP_NUM_THREADS=2 python benchmarks/bench_generate.py --threads 2
    python benchmarks/bench_generate.py --shapes tiny --new-tokens 64 --repeats 3

Imports the installed codekiln (never a copy).
"""

from __future__ import annotations

import argparse
import time

import torch
from codekiln.generate import complete
from codekiln.model import GPT, preset
from codekiln.quickstart import stdlib_files
from codekiln.tokenizer import Tokenizer


@torch.no_grad()
def nanogpt_generate(model: GPT, idx: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """nanoGPT's loop: crop to block_size, run the whole context, take the last logits."""
    for _ in range(new_tokens):
        cond = idx[:, -model.config.block_size :]
        logits, _ = model(cond)
        nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        idx = torch.cat((idx, nxt), dim=1)
    return idx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["tiny", "codeparrot-small"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="best of N")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    files = stdlib_files()[:8]
    tok = Tokenizer.train(files, vocab_size=512, progress=False, num_threads=1)
    text = "".join(p.read_text() for p in files)
    prompt_ids = tok.encode(text)[: args.prompt_tokens]
    prompt = tok.decode(prompt_ids)
    assert tok.encode(prompt) == prompt_ids

    print(f"torch {torch.__version__}, {args.threads} threads, prompt {len(prompt_ids)} tokens, "
          f"{args.new_tokens} new tokens, greedy, best of {args.repeats}")  # fmt: skip
    print(f"{'shape':<18}{'batch':>6}{'kv cache tok/s':>16}{'recompute tok/s':>17}{'speed-up':>10}"
          f"{'same ids':>10}")  # fmt: skip
    for shape in args.shapes:
        torch.manual_seed(0)
        # the tokenizer's vocabulary (the shapes' own vocab would only add a bigger head)
        model = GPT(preset(shape, vocab_size=tok.vocab_size)).eval()
        with torch.no_grad():
            model.transformer.wte.weight.mul_(20)  # clear-cut greedy choices (no near-ties)
        for batch in args.batches:
            fast = slow = float("inf")
            same = True
            for _ in range(args.repeats):
                t = time.perf_counter()
                texts = complete(
                    model, tok, prompt, temperature=0, max_new_tokens=args.new_tokens,
                    num_samples=batch, stop=None,
                )  # fmt: skip
                fast = min(fast, time.perf_counter() - t)
                idx = torch.tensor([prompt_ids] * batch)
                t = time.perf_counter()
                out = nanogpt_generate(model, idx, args.new_tokens)
                slow = min(slow, time.perf_counter() - t)
                # complete stops a row at end of text; compare up to there
                for row, text in zip(out[:, len(prompt_ids) :].tolist(), texts):
                    if tok.eot_id in row:
                        row = row[: row.index(tok.eot_id)]
                    same &= tok.decode(row) == text
            n = batch * args.new_tokens
            print(f"{shape:<18}{batch:>6}{n / fast:>16.1f}{n / slow:>17.1f}{slow / fast:>9.2f}x"
                  f"{'yes' if same else 'NO':>10}")  # fmt: skip


if __name__ == "__main__":
    main()
