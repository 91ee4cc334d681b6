#!/usr/bin/env python3
"""JAX peer for the Rust transformer LM training step: tokens per second on CPU.

Model (float32): a GPT-style decoder-only transformer. V tokens plus one BOS token; token
embedding E (V+1, d), learned position embedding P (C, d), C = context. Input ids x (B, T),
T <= C, targets y (B, T) in [0, V). h = E[x] + P[:T]; then L pre-LayerNorm blocks
  h = h + Attn(LN1(h)); h = h + MLP(LN2(h))
  LN    PyTorch LayerNorm: eps 1e-5, biased variance, gamma/beta of width d.
  Attn  qkv = a @ Wqkv^T + bqkv, Wqkv (3d, d) (rows: q, then k, then v); H heads of d/H;
        causal softmax(q k^T / sqrt(d/H)) v; heads concatenated; o @ Wo^T + bo, Wo (d, d).
  MLP   h1 = GELU_tanh(a @ W1^T + b1), W1 (4d, d); h1 @ W2^T + b2, W2 (d, 4d).
then a final LayerNorm and logits = hf @ E[:V]^T (tied to the token embedding, no bias).
Loss: softmax cross-entropy, mean over the B*T positions.
Parameters: (V+1)d + Cd + L(12d^2 + 13d) + 2d (per layer LN1+LN2 4d, Wqkv 3d^2+3d,
Wo d^2+d, W1 4d^2+4d, W2 4d^2+d; final LN 2d); asserted against the arrays.
Init (GPT-2, numpy seed): weights and embeddings N(0, 0.02), Wo and W2 N(0, 0.02/sqrt(2L)),
biases 0, LN gamma 1, beta 0.

One training step = forward, backward, global gradient-norm clipping to 1.0 (PyTorch's
clip_grad_norm_: g *= min(1, 1/(||g|| + 1e-6))), then a hand-written AdamW (torch.optim.AdamW
arithmetic): betas (0.9, 0.95), eps 1e-8, decoupled weight decay 0.1 (p <- p(1 - lr wd)) on
the weight matrices and both embeddings only (not biases, not LayerNorm), then
m += (1-b1)(g-m), v = b2 v + (1-b2) g^2, p -= (lr/(1-b1^t)) m / (sqrt(v)/sqrt(1-b2^t) + eps).
lr is a traced scalar argument (a schedule would be computed outside; here constant --lr).
All inside one jax.jit with the (params, m, v, t) state buffers donated.

Configurations: default V=4096 d=128 L=2 H=4 C=128 B=16 T=128 (2048 tokens per step, 937,600
parameters); small V=1024 d=64 L=2 H=2 C=128 B=16 T=128 (173,888 parameters). --vocab, --dim,
--layers, --heads, --context, --batch, --seq override them. Data: one fixed batch of uniform
random token ids (numpy seed), x = [BOS, s[:-1]], y = s; the data do not matter for timing.
After compiling and --warmup steps, --repeats timings of --steps steps each (wall clock,
block_until_ready at the end) give best and median tokens/s (B*T per step / step time).
--threads 1 sets XLA_FLAGS (single-threaded Eigen) and pins the process to CPU 0 before jax is
imported; --threads 2 keeps XLA's defaults on CPUs {0,1}. cpu_per_wall (process CPU seconds /
wall seconds over the timed steps) shows how many cores were really busy.

Prints one JSON line per configuration to stdout: peer, jax_version, jaxlib_version, threads,
xla_flags, affinity, loadavg_1min, config, vocab, dim, layers, heads, context, batch, seq,
tokens_per_step, params, lr, steps, repeats, warmup, compile_seconds (compile + first step),
seconds_min/median (per repeat), tokens_per_second_best/median, cpu_per_wall, initial_loss,
final_loss. --check instead verifies the step (stderr diagnostics, one JSON line per
configuration with "check": true, exit 1 on failure): the float32 loss at init is within 0.1
of ln V; 30 steps on the fixed batch lower the loss; and, in float64, jax.grad of the loss
matches central finite differences on a few entries of several parameters. Run:
  python3 benches/peers/lm_transformer_jax.py --threads 1
  python3 benches/peers/lm_transformer_jax.py --config both --threads 2
  python3 benches/peers/lm_transformer_jax.py --config both --check
Needs: pip install "jax[cpu]"
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

# The commonly quoted recipe. XLA ignores tokens after the first that lack "--", so the second
# one is inert. Even with the Eigen flag XLA may run work on a second thread; the affinity to
# CPU 0 is what guarantees one core (those threads are then time-sliced, never concurrent).
ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
LN_EPS = 1e-5
WD, B1, B2, ADAM_EPS, CLIP = 0.1, 0.9, 0.95, 1e-8, 1.0
# vocab, dim, layers, heads, context, batch, seq, timed steps per repeat, warm-up steps
# (steps: ~2-5 s per repeat on one thread)
CONFIGS = {
    "default": dict(vocab=4096, dim=128, layers=2, heads=4, context=128, batch=16, seq=128,
                    steps=8, warmup=3),
    "small": dict(vocab=1024, dim=64, layers=2, heads=2, context=128, batch=16, seq=128,
                  steps=25, warmup=5),
}
DECAYED = ("wte", "wpe", "wqkv", "wo", "w1", "w2")  # weight matrices and both embeddings


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one-line error, exit code 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def param_formula(c):
    V, d, L, C = c["vocab"], c["dim"], c["layers"], c["context"]
    return (V + 1) * d + C * d + L * (12 * d * d + 13 * d) + 2 * d


def init_params(c, seed, np):
    """GPT-2 init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), zeros, ones."""
    rng = np.random.default_rng(seed)
    V, d, L, C = c["vocab"], c["dim"], c["layers"], c["context"]
    normal = lambda shape, std: (rng.standard_normal(shape) * std).astype(np.float32)
    zeros = lambda n: np.zeros(n, np.float32)
    ones = lambda n: np.ones(n, np.float32)
    res_std = 0.02 / math.sqrt(2 * L)
    p = {"wte": normal((V + 1, d), 0.02), "wpe": normal((C, d), 0.02), "layers": []}
    for _ in range(L):
        p["layers"].append({
            "ln1_g": ones(d), "ln1_b": zeros(d),
            "wqkv": normal((3 * d, d), 0.02), "bqkv": zeros(3 * d),
            "wo": normal((d, d), res_std), "bo": zeros(d),
            "ln2_g": ones(d), "ln2_b": zeros(d),
            "w1": normal((4 * d, d), 0.02), "b1": zeros(4 * d),
            "w2": normal((d, 4 * d), res_std), "b2": zeros(d),
        })
    p["lnf_g"], p["lnf_b"] = ones(d), zeros(d)
    return p


def decay_mask(params, jax):
    """Same tree as params: True where decoupled weight decay applies."""
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    leaves = [any(getattr(k, "key", None) in DECAYED for k in path) for path, _ in paths]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), leaves)


def make_loss(c, jax):
    jnp = jax.numpy
    V, H = c["vocab"], c["heads"]

    def layer_norm(x, g, b):
        mu = jnp.mean(x, axis=-1, keepdims=True)
        xc = x - mu
        var = jnp.mean(xc * xc, axis=-1, keepdims=True)  # biased, as PyTorch
        return xc * jax.lax.rsqrt(var + LN_EPS) * g + b

    def attn(lp, a):
        B, T, d = a.shape
        hd = d // H
        qkv = a @ lp["wqkv"].T + lp["bqkv"]  # (B, T, 3d)
        q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(B, T, H, hd).transpose(0, 2, 1, 3)
                   for i in range(3))  # (B, H, T, hd)
        s = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(hd)  # (B, H, T, T)
        causal = jnp.tril(jnp.ones((T, T), bool))
        s = jnp.where(causal, s, jnp.finfo(s.dtype).min)
        o = jax.nn.softmax(s, axis=-1) @ v  # (B, H, T, hd)
        o = o.transpose(0, 2, 1, 3).reshape(B, T, d)
        return o @ lp["wo"].T + lp["bo"]

    def mlp(lp, a):
        h1 = jax.nn.gelu(a @ lp["w1"].T + lp["b1"], approximate=True)
        return h1 @ lp["w2"].T + lp["b2"]

    def loss_fn(p, x, y):
        T = x.shape[1]
        h = p["wte"][x] + p["wpe"][:T]
        for lp in p["layers"]:
            h = h + attn(lp, layer_norm(h, lp["ln1_g"], lp["ln1_b"]))
            h = h + mlp(lp, layer_norm(h, lp["ln2_g"], lp["ln2_b"]))
        hf = layer_norm(h, p["lnf_g"], p["lnf_b"])
        logits = hf @ p["wte"][:V].T  # (B, T, V), tied
        lse = jax.nn.logsumexp(logits, axis=-1)
        picked = jnp.take_along_axis(logits, y[..., None], axis=-1)[..., 0]
        return jnp.mean(lse - picked)

    return loss_fn


def make_step(c, mask, jax):
    jnp, tmap = jax.numpy, jax.tree_util.tree_map
    loss_fn = make_loss(c, jax)

    def step(state, x, y, lr):
        p, m, v, t = state
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        # Global gradient-norm clipping, as torch.nn.utils.clip_grad_norm_(max_norm=1).
        norm = jnp.sqrt(sum(jnp.sum(gi * gi) for gi in jax.tree_util.tree_leaves(g)))
        scale = jnp.minimum(1.0, CLIP / (norm + 1e-6))
        g = tmap(lambda gi: gi * scale, g)
        # AdamW as torch.optim.AdamW: decoupled decay, then the bias-corrected Adam update.
        t = t + 1
        p = tmap(lambda pi, d: pi * (1 - lr * WD) if d else pi, p, mask)
        m = tmap(lambda mi, gi: mi + (1 - B1) * (gi - mi), m, g)
        v = tmap(lambda vi, gi: B2 * vi + (1 - B2) * gi * gi, v, g)
        step_size = lr / (1 - B1 ** t)
        bc2_sqrt = jnp.sqrt(1 - B2 ** t)
        p = tmap(lambda pi, mi, vi: pi - step_size * mi / (jnp.sqrt(vi) / bc2_sqrt + ADAM_EPS),
                 p, m, v)
        return (p, m, v, t), loss

    return jax.jit(step, donate_argnums=0)


def setup(c, seed, jax, np):
    params = init_params(c, seed, np)
    n_params = sum(int(a.size) for a in jax.tree_util.tree_leaves(params))
    assert n_params == param_formula(c), f"{n_params} parameters, formula {param_formula(c)}"
    rng = np.random.default_rng(seed)
    s = rng.integers(0, c["vocab"], (c["batch"], c["seq"]), dtype=np.int32)
    bos = np.full((c["batch"], 1), c["vocab"], np.int32)  # BOS id = V
    x = np.concatenate([bos, s[:, :-1]], axis=1)
    return params, n_params, x, s


def fresh_state(params, jax):
    jnp = jax.numpy
    p = jax.tree_util.tree_map(jnp.asarray, params)
    zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, p)
    return (p, zeros(), zeros(), jnp.float32(0))


def bench(name, c, a, jax, np):
    steps = a.steps or c["steps"]
    warmup = c["warmup"] if a.warmup is None else a.warmup
    params, n_params, x, y = setup(c, a.seed, jax, np)
    x, y = jax.device_put(x), jax.device_put(y)
    lr = np.float32(a.lr)
    step = make_step(c, decay_mask(params, jax), jax)
    state = fresh_state(params, jax)

    t0 = time.perf_counter()
    state, loss = jax.block_until_ready(step(state, x, y, lr))  # compile + one step
    compile_s = time.perf_counter() - t0
    initial_loss = float(loss)
    for _ in range(warmup):
        state, loss = step(state, x, y, lr)
    jax.block_until_ready(state)

    secs, cpu = [], []
    for _ in range(a.repeats):
        w0, c0 = time.perf_counter(), time.process_time()  # process_time: all threads
        for _ in range(steps):
            state, loss = step(state, x, y, lr)
        jax.block_until_ready((state, loss))
        secs.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    if not math.isfinite(float(loss)):
        raise SystemExit(f"lm_transformer_jax.py: error: non-finite loss {float(loss)}")
    tokens = c["batch"] * c["seq"]
    print(f"{name}: {tokens * steps / min(secs):.0f} tokens/s best, repeats "
          + ", ".join(f"{s:.2f}" for s in secs) + " s", file=sys.stderr)
    return {
        "config": name, **{k: c[k] for k in ("vocab", "dim", "layers", "heads", "context",
                                              "batch", "seq")},
        "tokens_per_step": tokens, "params": n_params, "lr": a.lr, "steps": steps,
        "repeats": a.repeats, "warmup": warmup, "compile_seconds": compile_s,
        "seconds_min": min(secs), "seconds_median": statistics.median(secs),
        "tokens_per_second_best": tokens * steps / min(secs),
        "tokens_per_second_median": tokens * steps / statistics.median(secs),
        "cpu_per_wall": sum(cpu) / sum(secs), "initial_loss": initial_loss,
        "final_loss": float(loss),
    }


def check(name, c, a, jax, np):
    """Loss at init ~ ln V; training lowers it; float64 jax.grad vs central differences."""
    say = lambda msg: print(f"{name}: {msg}", file=sys.stderr)
    params, n_params, x, y = setup(c, a.seed, jax, np)
    ok = True
    loss_fn = make_loss(c, jax)
    # 1. float32 loss at init, through the benchmarked step (its loss is the pre-update loss).
    step = make_step(c, decay_mask(params, jax), jax)
    state = fresh_state(params, jax)
    lr = np.float32(a.lr)
    state, loss0 = step(state, x, y, lr)
    loss0 = float(loss0)
    ln_v = math.log(c["vocab"])
    good = abs(loss0 - ln_v) < 0.1
    ok &= good
    say(f"loss at init {loss0:.4f}, ln V {ln_v:.4f}: {'ok' if good else 'FAIL'}")
    # 2. 30 steps on the fixed batch must lower the loss (memorising it).
    for _ in range(29):
        state, loss = step(state, x, y, lr)
    loss30 = float(jax.jit(loss_fn)(state[0], x, y))
    good = math.isfinite(loss30) and loss30 < loss0 - 0.05
    ok &= good
    say(f"loss after 30 steps {loss30:.4f}: {'ok' if good else 'FAIL'}")
    # 3. float64: jax.grad vs central finite differences on a few entries of several arrays.
    worst = 0.0
    with jax.enable_x64(True):
        jnp = jax.numpy
        p64 = jax.tree_util.tree_map(lambda z: jnp.asarray(z, jnp.float64), params)
        # perturb beta/biases away from 0 and gamma from 1 so their gradients are generic
        rng = np.random.default_rng(a.seed + 1)
        p64 = jax.tree_util.tree_map(
            lambda z: z + 0.02 * jnp.asarray(rng.standard_normal(z.shape)), p64)
        f = jax.jit(lambda p: loss_fn(p, jnp.asarray(x), jnp.asarray(y)))
        g = jax.jit(jax.grad(lambda p: loss_fn(p, jnp.asarray(x), jnp.asarray(y))))(p64)
        assert f(p64).dtype == jnp.float64
        probes = [(("wte",), (int(y[0, 0]), 0)), (("wte",), (c["vocab"], 1)),
                  (("wpe",), (3, 2)), (("lnf_g",), (5,)), (("lnf_b",), (7,))]
        for li in range(c["layers"]):
            for key, idx in (("wqkv", (1, 2)), ("wqkv", (c["dim"] + 3, 4)),
                             ("wqkv", (2 * c["dim"] + 5, 6)), ("bqkv", (c["dim"] + 1,)),
                             ("wo", (2, 3)), ("bo", (4,)), ("w1", (9, 1)), ("b1", (10,)),
                             ("w2", (3, 11)), ("b2", (5,)), ("ln1_g", (2,)),
                             ("ln1_b", (3,)), ("ln2_g", (4,)), ("ln2_b", (6,))):
                probes.append((("layers", li, key), idx))

        def get(tree, path):
            for k in path:
                tree = tree[k]
            return tree

        def put(tree, path, idx, delta):
            if len(path) == 1:
                return {**tree, path[0]: tree[path[0]].at[idx].add(delta)}
            if isinstance(tree, list):
                return [put(t, path[1:], idx, delta) if i == path[0] else t
                        for i, t in enumerate(tree)]
            return {**tree, path[0]: put(tree[path[0]], path[1:], idx, delta)}

        h = 1e-5
        for path, idx in probes:
            fd = (float(f(put(p64, path, idx, h))) - float(f(put(p64, path, idx, -h)))) / (2 * h)
            ad = float(get(g, path)[idx])
            err = abs(fd - ad) / max(abs(fd), abs(ad), 1e-6)
            worst = max(worst, err)
            if err > 1e-4:
                ok = False
                say(f"grad {'/'.join(map(str, path))}{list(idx)}: jax {ad:.6e}, "
                    f"finite difference {fd:.6e}: FAIL")
        say(f"float64 grad vs finite differences on {len(probes)} entries, worst relative "
            f"error {worst:.2e}: {'ok' if worst <= 1e-4 else 'FAIL'}")
    return ok, {"config": name, "check": True, "ok": bool(ok), "params": n_params,
                "loss_init": loss0, "ln_vocab": ln_v, "loss_after_30_steps": loss30,
                "grad_probes": len(probes), "grad_worst_relative_error": worst}


def main():
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=["default", "small", "both"], default="default")
    p.add_argument("--threads", type=int, choices=[1, 2], default=1)
    p.add_argument("--steps", type=int,
                   help="timed steps per repeat (default: default 8, small 25)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int,
                   help="untimed steps after compiling (default 3, small 5)")
    for flag in ("vocab", "dim", "layers", "heads", "context", "batch", "seq"):
        p.add_argument(f"--{flag}", type=int, help="override the configuration's value")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true",
                   help="verify loss at init, training and float64 gradients instead of timing")
    a = p.parse_args()
    at_least = lambda v, lo: v is None or v >= lo
    if not (at_least(a.steps, 1) and a.repeats >= 1 and at_least(a.warmup, 0) and a.seed >= 0
            and all(at_least(getattr(a, k), 1) for k in
                    ("vocab", "dim", "layers", "heads", "context", "batch", "seq"))):
        p.error("need --steps, --repeats and the model sizes >= 1, --warmup, --seed >= 0")
    if a.threads > (os.cpu_count() or 1):
        p.error(f"--threads {a.threads} exceeds the {os.cpu_count()} CPUs")
    configs = {}
    for name in (["default", "small"] if a.config == "both" else [a.config]):
        c = dict(CONFIGS[name])
        c.update({k: getattr(a, k) for k in ("vocab", "dim", "layers", "heads", "context",
                                             "batch", "seq") if getattr(a, k) is not None})
        if c["dim"] % c["heads"]:
            p.error(f"--dim {c['dim']} is not a multiple of --heads {c['heads']}")
        if c["seq"] > c["context"]:
            p.error(f"--seq {c['seq']} exceeds --context {c['context']}")
        configs[name] = c

    # Both must happen before jax is imported: XLA reads its flags and sizes its pools once.
    if a.threads == 1:
        os.environ["XLA_FLAGS"] = ONE_THREAD_FLAGS
    os.sched_setaffinity(0, set(range(a.threads)))
    try:
        import jax
        import jaxlib
    except ImportError:
        print('lm_transformer_jax.py: error: jax is not installed; run: pip install "jax[cpu]"',
              file=sys.stderr)
        sys.exit(2)
    import numpy as np

    jax.config.update("jax_platforms", "cpu")
    base = {"peer": "jax", "jax_version": jax.__version__, "jaxlib_version": jaxlib.__version__,
            "threads": a.threads, "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "affinity": sorted(os.sched_getaffinity(0)), "loadavg_1min": os.getloadavg()[0]}
    all_ok = True
    for name, c in configs.items():
        if a.check:
            ok, row = check(name, c, a, jax, np)
            all_ok &= ok
        else:
            row = bench(name, c, a, jax, np)
        print(json.dumps({**base, **row}), flush=True)
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
