"""The reference decode timing for tools/device/check.sh: transformers `generate` (greedy, eager
attention, bf16 weights, on the GPU) on the same synthetic checkpoint and prompt as tp.

usage: torch_bench.py MODEL_DIR PROMPT_IDS(comma-separated) NEW_TOKENS [--dry-run]
Prints one JSON line: ms_per_token, prefill_ms, versions — or {"skipped": reason}.
"""
import json
import sys
import time


def main():
    model_dir, prompt, new_tokens = sys.argv[1], [int(t) for t in sys.argv[2].split(",")], int(sys.argv[3])
    dry_run = "--dry-run" in sys.argv[4:]
    try:
        import torch
        import transformers
    except ImportError as e:
        print(json.dumps({"skipped": f"python has no {e.name}"}))
        return
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    if dry_run:
        print(json.dumps({"skipped": "dry run", **versions}))
        return
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "torch sees no GPU", **versions}))
        return
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    model = model.to(device="cuda", dtype=torch.bfloat16).eval()
    ids = torch.tensor([prompt], device="cuda")
    kwargs = dict(do_sample=False, pad_token_id=0, eos_token_id=None)

    def timed(n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kwargs)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    timed(8)  # warm up
    first = min(timed(1) for _ in range(3))
    total = timed(new_tokens)
    print(json.dumps({
        "ms_per_token": (total - first) / (new_tokens - 1) * 1000,
        "prefill_ms": first * 1000,
        "gpu": torch.cuda.get_device_name(0),
        **versions,
    }))


main()
