"""PyTorch eager baseline for `epic bench-experts` on the same GPU: one MoE layer's routed experts of
DeepSeek-V3's size (256 experts [2048 x 7168] in bf16, 8 per token, uniform routing), the loop over
experts that reference implementations write (DeepSeek's own MoE.forward), bf16 activations on the
tensor cores. Prints the same columns: experts touched, weight MB, device us, GB/s."""
import sys
import torch

torch.manual_seed(0)
E, H, I, K = 256, 7168, 2048, 8
dev = "cuda"
w1 = torch.randn(E, I, H, device=dev, dtype=torch.bfloat16) * H ** -0.5
w3 = torch.randn(E, I, H, device=dev, dtype=torch.bfloat16) * H ** -0.5
w2 = torch.randn(E, H, I, device=dev, dtype=torch.bfloat16) * I ** -0.5
expert_bytes = 3 * I * H * 2


def layer(x, ids, w):
    y = torch.zeros_like(x)
    counts = torch.bincount(ids.flatten(), minlength=E).tolist()
    for e in range(E):
        if counts[e] == 0:
            continue
        rows, slot = torch.where(ids == e)
        h = torch.nn.functional.silu(x[rows] @ w1[e].T) * (x[rows] @ w3[e].T)
        y[rows] += (h @ w2[e].T) * w[rows, slot, None]
    return y, sum(1 for c in counts if c)


print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, bf16 experts [{I} x {H}], {E} hosted, {K} per token")
print(f"{'batch':>6} {'experts':>8} {'weight MB':>10} {'device us':>11} {'GB/s':>9}")
for batch in [int(b) for b in (sys.argv[1] if len(sys.argv) > 1 else "1,8,32,128,512").split(",")]:
    times, touched = [], []
    for it in range(13):
        x = torch.randn(batch, H, device=dev, dtype=torch.bfloat16)
        ids = torch.stack([torch.randperm(E, device=dev)[:K] for _ in range(batch)])
        w = torch.full((batch, K), 1.0 / K, device=dev, dtype=torch.bfloat16)
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        _, n = layer(x, ids, w)
        stop.record()
        torch.cuda.synchronize()
        if it >= 3:
            times.append(start.elapsed_time(stop) * 1e3)
            touched.append(n)
    us = sorted(times)[len(times) // 2]
    n = sum(touched) / len(touched)
    print(f"{batch:>6} {n:>8.0f} {n * expert_bytes / 1e6:>10.1f} {us:>11.1f} {n * expert_bytes / (us * 1e-6) / 1e9:>9.0f}")
