#!/usr/bin/env python3
"""Independent numpy float32 reference for the DeepSeek-V3 multi-token-prediction (MTP) module
of the synthetic tiny-v3 checkpoint.

Step 1: main model (layers 0..num_hidden_layers-1), full causal forward without KV cache,
        checked against golden.json (prefill logits and every greedy step's logits).
Step 2: MTP module = layer index num_hidden_layers (model.layers.4.*):
          x[i]  = eh_proj( concat( enorm(E_mtp[S[i+1]]), hnorm(H[i]) ) )      i = 0..n-2
          x     = decoder block of layer 4 (MLA + MoE, rope position i, causal among MTP rows)
          logits[i] = shared_head.head( shared_head.norm(x[i]) )            predicts S[i+2]
        where H[i] is the main model's final hidden state after model.norm.
Step 3: writes testdata/tiny-v3/mtp-reference.json.

Only needs python3 + numpy (safetensors parsed by hand). Run from anywhere:
    python3 scripts/mtp-reference.py
"""
import json
import math
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIR = os.path.join(ROOT, "testdata", "tiny-v3")
OUT = os.path.join(DIR, "mtp-reference.json")

F32 = np.float32


# ---------------------------------------------------------------- safetensors
def read_safetensors(path):
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + hlen)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = np.asarray(data[a:b])
        dt = info["dtype"]
        if dt == "BF16":
            arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        elif dt == "F32":
            arr = raw.view("<f4").astype(np.float32)
        else:
            raise ValueError(f"unsupported dtype {dt} for {name}")
        out[name] = arr.reshape(info["shape"])
    return out


def load_weights():
    index = json.load(open(os.path.join(DIR, "model.safetensors.index.json")))
    W = {}
    for shard in sorted(set(index["weight_map"].values())):
        W.update(read_safetensors(os.path.join(DIR, shard)))
    missing = set(index["weight_map"]) - set(W)
    assert not missing, missing
    return W


# ---------------------------------------------------------------- model pieces
class Model:
    def __init__(self, cfg, W):
        self.cfg = cfg
        self.W = W
        self.eps = F32(cfg["rms_norm_eps"])
        self.H = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.dn = cfg["qk_nope_head_dim"]
        self.dr = cfg["qk_rope_head_dim"]
        self.dv = cfg["v_head_dim"]
        self.kvr = cfg["kv_lora_rank"]
        rs = cfg["rope_scaling"]
        # softmax scale with YaRN mscale^2 (mscale == mscale_all_dim -> cos/sin unscaled)
        mscale = 0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1.0
        self.softmax_scale = F32((self.dn + self.dr) ** -0.5 * mscale * mscale)
        self.inv_freq = self._yarn_inv_freq()
        self._stack_experts()

    def _yarn_inv_freq(self):
        cfg = self.cfg
        rs = cfg["rope_scaling"]
        d = self.dr
        theta = float(cfg["rope_theta"])
        base = (1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float32) / d))).astype(F32)
        if cfg["max_position_embeddings"] <= rs["original_max_position_embeddings"]:
            return base
        orig = rs["original_max_position_embeddings"]

        def corr_dim(rot):
            return d * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(theta))

        low = max(math.floor(corr_dim(rs["beta_fast"])), 0)
        high = min(math.ceil(corr_dim(rs["beta_slow"])), d - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(d // 2, dtype=np.float32) - low) / (high - low), 0, 1).astype(F32)
        smooth = F32(1) - ramp
        return (base / F32(rs["factor"]) * (F32(1) - smooth) + base * smooth).astype(F32)

    def _stack_experts(self):
        W = self.W
        self.experts = {}
        for layer in range(self.cfg["num_hidden_layers"] + self.cfg.get("num_nextn_predict_layers", 0)):
            p = f"model.layers.{layer}.mlp."
            if p + "experts.0.gate_proj.weight" not in W:
                continue
            n = self.cfg["n_routed_experts"]
            g = np.stack([W[f"{p}experts.{j}.gate_proj.weight"] for j in range(n)])
            u = np.stack([W[f"{p}experts.{j}.up_proj.weight"] for j in range(n)])
            dn = np.stack([W[f"{p}experts.{j}.down_proj.weight"] for j in range(n)])
            self.experts[layer] = (g, u, dn)

    def rmsnorm(self, x, w):
        x = x.astype(F32)
        ms = np.mean(x * x, axis=-1, keepdims=True, dtype=F32)
        return (x * (F32(1) / np.sqrt(ms + self.eps)) * w).astype(F32)

    @staticmethod
    def linear(x, w):
        return (x @ w.T).astype(F32)

    def rope(self, x, pos):
        # x [..., n, dr] (n = sequence axis second to last), interleaved pairs
        ang = (pos.astype(F32)[:, None] * self.inv_freq[None, :]).astype(F32)  # [n, dr/2]
        c, s = np.cos(ang).astype(F32), np.sin(ang).astype(F32)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    def mla(self, layer, x, pos):
        W = self.W
        p = f"model.layers.{layer}.self_attn."
        n = x.shape[0]
        nh, dn, dr, dv = self.nh, self.dn, self.dr, self.dv
        if self.cfg.get("q_lora_rank"):
            q = self.linear(self.rmsnorm(self.linear(x, W[p + "q_a_proj.weight"]), W[p + "q_a_layernorm.weight"]),
                            W[p + "q_b_proj.weight"])
        else:
            q = self.linear(x, W[p + "q_proj.weight"])
        q = q.reshape(n, nh, dn + dr).transpose(1, 0, 2)  # [nh, n, dn+dr]
        q_nope, q_pe = q[..., :dn], self.rope(q[..., dn:], pos)
        kva = self.linear(x, W[p + "kv_a_proj_with_mqa.weight"])  # [n, kvr + dr]
        c, k_pe = kva[:, :self.kvr], kva[:, self.kvr:]
        k_pe = self.rope(k_pe, pos)  # [n, dr]
        kv = self.linear(self.rmsnorm(c, W[p + "kv_a_layernorm.weight"]), W[p + "kv_b_proj.weight"])
        kv = kv.reshape(n, nh, dn + dv).transpose(1, 0, 2)  # [nh, n, dn+dv]
        k_nope, v = kv[..., :dn], kv[..., dn:]
        scores = (q_nope @ k_nope.transpose(0, 2, 1) + q_pe @ k_pe.T[None]).astype(F32) * self.softmax_scale
        mask = np.triu(np.ones((n, n), dtype=bool), 1)
        scores = np.where(mask[None], F32(-np.inf), scores)
        scores = scores - scores.max(-1, keepdims=True)
        e = np.exp(scores).astype(F32)
        probs = (e / e.sum(-1, keepdims=True, dtype=F32)).astype(F32)
        o = (probs @ v).astype(F32)  # [nh, n, dv]
        o = o.transpose(1, 0, 2).reshape(n, nh * dv)
        return self.linear(o, W[p + "o_proj.weight"])

    def mlp(self, x, g, u, d):
        a = self.linear(x, g)
        a = (a / (F32(1) + np.exp(-a))).astype(F32)
        return self.linear(a * self.linear(x, u), d)

    def route(self, layer, x):
        cfg, W = self.cfg, self.W
        p = f"model.layers.{layer}.mlp.gate."
        s = self.linear(x, W[p + "weight"])
        s = (F32(1) / (F32(1) + np.exp(-s))).astype(F32)  # sigmoid
        b = (s + W[p + "e_score_correction_bias"]).astype(F32)
        ng, tg, k = cfg["n_group"], cfg["topk_group"], cfg["num_experts_per_tok"]
        n, E = b.shape
        gs = np.sort(b.reshape(n, ng, E // ng), axis=-1)[..., -2:].sum(-1, dtype=F32)  # top-2 sum
        keep = np.argsort(-gs, axis=-1, kind="stable")[:, :tg]
        gmask = np.zeros((n, ng), dtype=bool)
        np.put_along_axis(gmask, keep, True, axis=-1)
        bm = np.where(np.repeat(gmask, E // ng, axis=-1), b, F32(-np.inf))
        idx = np.argsort(-bm, axis=-1, kind="stable")[:, :k]
        w = np.take_along_axis(s, idx, axis=-1)
        if cfg.get("norm_topk_prob", True):
            w = (w / w.sum(-1, keepdims=True, dtype=F32)).astype(F32)
        w = (w * F32(cfg["routed_scaling_factor"])).astype(F32)
        return idx, w

    def moe(self, layer, x):
        W = self.W
        p = f"model.layers.{layer}.mlp."
        idx, w = self.route(layer, x)
        g, u, dn = self.experts[layer]
        y = np.zeros_like(x)
        for t in range(x.shape[0]):
            acc = np.zeros(x.shape[1], dtype=F32)
            for j in range(idx.shape[1]):
                e = idx[t, j]
                acc += self.mlp(x[t:t + 1], g[e], u[e], dn[e])[0] * w[t, j]
            y[t] = acc
        shared = self.mlp(x, W[p + "shared_experts.gate_proj.weight"], W[p + "shared_experts.up_proj.weight"],
                          W[p + "shared_experts.down_proj.weight"])
        return (y + shared).astype(F32), idx, w

    def block(self, layer, h, pos, routing=None):
        W = self.W
        p = f"model.layers.{layer}."
        h = (h + self.mla(layer, self.rmsnorm(h, W[p + "input_layernorm.weight"]), pos)).astype(F32)
        x = self.rmsnorm(h, W[p + "post_attention_layernorm.weight"])
        if layer < self.cfg["first_k_dense_replace"]:
            f = self.mlp(x, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"], W[p + "mlp.down_proj.weight"])
        else:
            f, idx, w = self.moe(layer, x)
            if routing is not None:
                routing[layer] = (idx, w)
        return (h + f).astype(F32)

    def forward(self, tokens, trace=None):
        """Returns (final hidden after model.norm [n, H], logits [n, V])."""
        W = self.W
        pos = np.arange(len(tokens))
        h = W["model.embed_tokens.weight"][np.asarray(tokens)].astype(F32)
        if trace is not None:
            trace["embeddings"] = h.copy()
            trace["blocks"] = []
            trace["routing"] = {}
        for layer in range(self.cfg["num_hidden_layers"]):
            h = self.block(layer, h, pos, trace["routing"] if trace is not None else None)
            if trace is not None:
                trace["blocks"].append(h.copy())
        hn = self.rmsnorm(h, W["model.norm.weight"])
        return hn, self.linear(hn, W["lm_head.weight"])

    def mtp(self, tokens, hn):
        """MTP logits [n-1, V]; row i predicts tokens[i+2]."""
        W = self.W
        L = self.cfg["num_hidden_layers"]
        p = f"model.layers.{L}."
        toks = np.asarray(tokens)
        n = len(toks)
        e = W[p + "embed_tokens.weight"][toks[1:]].astype(F32)
        cat = np.concatenate([self.rmsnorm(e, W[p + "enorm.weight"]),
                              self.rmsnorm(hn[:n - 1], W[p + "hnorm.weight"])], axis=-1)
        x = self.linear(cat, W[p + "eh_proj.weight"])
        x = self.block(L, x, np.arange(n - 1))
        return self.linear(self.rmsnorm(x, W[p + "shared_head.norm.weight"]), W[p + "shared_head.head.weight"])


def fmt(v):
    return float(f"{float(v):.7g}")


def main():
    cfg = json.load(open(os.path.join(DIR, "config.json")))
    golden = json.load(open(os.path.join(DIR, "golden.json")))
    W = load_weights()
    m = Model(cfg, W)
    L = cfg["num_hidden_layers"]
    print(f"softmax_scale {m.softmax_scale:.7g}  inv_freq {m.inv_freq}")
    print("MTP embed_tokens == main embed_tokens:",
          bool(np.array_equal(W[f"model.layers.{L}.embed_tokens.weight"], W["model.embed_tokens.weight"])),
          " shared_head.head == lm_head:",
          bool(np.array_equal(W[f"model.layers.{L}.shared_head.head.weight"], W["lm_head.weight"])))

    # ---- step 1a: trace of prompt 1
    tr = golden["trace"]
    trace = {}
    m.forward(golden["prompts"][tr["prompt_index"]]["tokens"], trace)
    emb_err = np.abs(trace["embeddings"] - np.array(tr["embeddings"], F32)).max()
    blk_err = max(np.abs(trace["blocks"][i] - np.array(tr["block_outputs"][i], F32)).max() for i in range(L))
    rw_err, rset_ok = 0.0, True
    for r in tr["routing"]:
        idx, w = trace["routing"][r["layer"]]
        for t in range(idx.shape[0]):
            rset_ok &= set(idx[t].tolist()) == set(r["experts"][t])
            mine = dict(zip(idx[t].tolist(), w[t].tolist()))
            rw_err = max(rw_err, max(abs(mine.get(e, 1e9) - ww) for e, ww in zip(r["experts"][t], r["weights"][t])))
    print(f"trace: embeddings max err {emb_err:.3g}, block outputs {blk_err:.3g}, "
          f"routing sets equal {rset_ok}, routing weights {rw_err:.3g}")

    # ---- step 1b: full forward of prompt + 12 greedy tokens, compare prefill + step logits
    max_pre, max_step, tok_ok = 0.0, 0.0, True
    cases = []
    for pi, pr in enumerate(golden["prompts"]):
        prompt, greedy = pr["tokens"], pr["greedy_tokens"]
        S = prompt + greedy
        Lp = len(prompt)
        hn, logits = m.forward(S)
        e_pre = np.abs(logits[Lp - 1] - np.array(pr["prefill_logits"], F32)).max()
        e_step = max(np.abs(logits[Lp + k] - np.array(pr["step_logits"][k], F32)).max() for k in range(12))
        am = logits[Lp - 1:Lp + 11].argmax(-1).tolist()
        ok = am == greedy
        print(f"prompt {pi} (L={Lp}): prefill max err {e_pre:.3g}, step max err {e_step:.3g}, greedy argmax ok {ok}")
        max_pre, max_step, tok_ok = max(max_pre, e_pre), max(max_step, e_step), tok_ok and ok
        cases.append((S, Lp, hn))
    print(f"STEP 1: max prefill err {max_pre:.3g}, max step err {max_step:.3g}, greedy ok {tok_ok}")
    if not (max_pre < 1e-4 and max_step < 1e-4 and tok_ok and rset_ok and blk_err < 5e-5):
        sys.exit("main model does not match golden.json -- not writing MTP reference")

    # ---- step 2/3: MTP
    out_cases = []
    for pi, (S, Lp, hn) in enumerate(cases):
        lg = m.mtp(S, hn)
        n = len(S)
        am = lg.argmax(-1).tolist()
        # greedy part: target S[i+2] is a greedy token, i.e. i + 2 >= Lp
        gi = [i for i in range(n - 1) if i + 2 < n and i + 2 >= Lp]
        hits = sum(am[i] == S[i + 2] for i in gi)
        allv = [i for i in range(n - 2)]
        hits_all = sum(am[i] == S[i + 2] for i in allv)
        srt = np.sort(lg, axis=-1)
        gap = float((srt[:, -1] - srt[:, -2]).min())
        print(f"case {pi}: n={n}, MTP argmax == S[i+2] in greedy part {hits}/{len(gi)} "
              f"(all i<=n-3: {hits_all}/{len(allv)}), min top1-top2 gap {gap:.3g}")
        rows = []
        for i in sorted({0, n - 3, n - 2}):
            if i < 0:
                continue
            rows.append({"position": i, "logits": [fmt(v) for v in lg[i]]})
        out_cases.append({"tokens": [int(t) for t in S], "mtp_argmax": am, "rows": rows, "_gap": gap})

    min_gap = min(c.pop("_gap") for c in out_cases)
    doc = {
        "definition": (
            "DeepSeek-V3 MTP (layer index num_hidden_layers = 4, as vLLM deepseek_mtp.py / SGLang deepseek_nextn.py). "
            "S = prompt tokens + 12 golden greedy tokens, n = len(S). H[i] = main model final hidden after model.norm "
            "(the vector lm_head multiplies). For i = 0..n-2: x[i] = eh_proj(concat(RMSNorm_enorm(E4[S[i+1]]), "
            "RMSNorm_hnorm(H[i]))) with E4 = model.layers.4.embed_tokens, embedding half first, eps = rms_norm_eps; "
            "x goes through decoder block 4 (h += MLA(input_layernorm(h)); h += MoE(post_attention_layernorm(h))) "
            "at rope positions 0..n-2, causal among the MTP rows only (row 0 keeps its embedding: no vLLM-style "
            "position-0 masking); logits[i] = shared_head.head(RMSNorm_shared_head.norm(x[i])), predicting S[i+2]. "
            "mtp_argmax[i] = argmax logits[i] for i = 0..n-2; rows hold full logits at positions 0, n-3, n-2."
        ),
        "source": (
            f"scripts/mtp-reference.py (numpy float32; main model checked against golden.json: max errors "
            f"prefill logits {max_pre:.2g}, step logits {max_step:.2g}, trace block outputs {blk_err:.2g}, "
            f"routing weights {rw_err:.2g}; greedy tokens identical; min MTP top1-top2 gap {min_gap:.3g})"
        ),
        "cases": out_cases,
    }
    # compact: one line per row / token list
    lines = ["{", f' "definition": {json.dumps(doc["definition"])},', f' "source": {json.dumps(doc["source"])},',
             ' "cases": [']
    for ci, c in enumerate(out_cases):
        lines.append("  {")
        lines.append(f'   "tokens": {json.dumps(c["tokens"], separators=(",", ":"))},')
        lines.append(f'   "mtp_argmax": {json.dumps(c["mtp_argmax"], separators=(",", ":"))},')
        lines.append('   "rows": [')
        for ri, r in enumerate(c["rows"]):
            sep = "," if ri < len(c["rows"]) - 1 else ""
            lines.append(f'    {json.dumps(r, separators=(",", ":"))}{sep}')
        lines.append("   ]")
        lines.append("  }" + ("," if ci < len(out_cases) - 1 else ""))
    lines.append(" ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
