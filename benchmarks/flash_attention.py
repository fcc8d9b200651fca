"""Flash attention forward: tsir against torch's scaled_dot_product_attention (FlashAttention
backend where available), same inputs, one run. `python benchmarks/flash_attention.py`."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
sys.path.insert(0, os.path.dirname(__file__))


def main() -> None:
    import torch
    from bandwidth import bench
    from flash_attention import flash_attention

    import tsir

    print(f"device: {torch.cuda.get_device_name()}")
    for BH, S, D in ((32, 4096, 64), (32, 4096, 128)):
        q, k, v = (torch.randn(BH, S, D, device="cuda", dtype=torch.float16) for _ in range(3))
        o = torch.empty_like(q)
        kern = tsir.compile(flash_attention(BH, S, D), target="cuda")
        kern(q, k, v, o)
        ref = torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None])[0]
        err = ((o.float() - ref.float()).norm() / ref.float().norm()).item()
        flops = 4 * BH * S * S * D
        t = bench(lambda: kern(q, k, v, o), reps=20)
        t_ref = bench(
            lambda: torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None]),
            reps=20,
        )
        print(
            f"BH={BH} S={S} D={D}: tsir {flops / t / 1e12:6.1f} TFLOP/s, torch SDPA {flops / t_ref / 1e12:6.1f} "
            f"TFLOP/s, rel err {err:.1e}"
        )


if __name__ == "__main__":
    main()
