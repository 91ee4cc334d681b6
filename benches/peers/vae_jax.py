#!/usr/bin/env python3
"""JAX peer for the Rust VAE training step: training examples per second on CPU.

One training step = draw eps ~ N(0, I) from a JAX PRNG key, forward, backward and a hand-written
Adam update (PyTorch's torch.optim.Adam with L2 weight decay: g += wd*p; lr 1e-3, wd 1e-5,
betas (0.9, 0.999), eps 1e-8, bias-corrected), all inside one jax.jit (buffers donated).
Loss: per example, Bernoulli BCE-with-logits summed over the 784 pixels plus the Gaussian KL
summed over the 20 latents; the step minimises the SUM of that over the batch (as the Rust
Vae::train_step and PyTorch's VAE example do; a mean would only rescale, not change the time).
Models (PyTorch default-style uniform init, float32):
  mlp    784-400-20 VAE: Linear(784,400)+ReLU, heads Linear(400,20) x2 (mean, log-variance);
         decoder Linear(20,400)+ReLU, Linear(400,784). Batch 128.
  paper  conv VAE, NCHW: Conv(1>64,4,s2,p1)+ReLU, Conv(64>128,4,s2,p1)+ReLU, flatten 6272,
         heads Linear(6272,20) x2; decoder Linear(20,6272)+ReLU, reshape 128x7x7,
         ConvT(128>64,4,s2,p1)+ReLU, ConvT(64>1,4,s2,p1). 647,081 parameters. Batch 256.
         --convt lax (default) uses lax.conv_transpose, whose weight gradient XLA:CPU runs as
         a slow rhs-dilated conv (~80% of the step); --convt subpixel computes the same
         ConvTranspose as four stride-1 2x2 convs interleaved, ~3x faster per step.
Input: one fixed batch of binarised uniform noise in {0,1} (numpy seed), shape (batch, 784);
the data do not matter for timing. After compiling and --warmup steps, --repeats timings of
--steps steps each (wall clock, block_until_ready at the end) give best and median examples/s.
--threads 1 sets XLA_FLAGS (single-threaded Eigen) and pins the process to CPU 0 before jax is
imported; --threads 2 keeps XLA's defaults on CPUs {0,1}. cpu_per_wall (process CPU seconds /
wall seconds over the timed steps) shows how many cores were really busy.

Prints one JSON line per model to stdout: peer, jax_version, jaxlib_version, threads, xla_flags,
affinity, loadavg_1min, model, convt, batch, params, steps, repeats, warmup, compile_seconds
(compile + first step), seconds_min/median (per repeat), examples_per_second_best/median,
cpu_per_wall, final_loss. Run:
  python3 benches/peers/vae_jax.py --model mlp --threads 1
  python3 benches/peers/vae_jax.py --model both --threads 2
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
LATENT, PIXELS = 20, 784
LR, WD, B1, B2, EPS = 1e-3, 1e-5, 0.9, 0.999, 1e-8
# batch, timed steps per repeat, warm-up steps: ~2-7 s per repeat on one thread
DEFAULTS = {"mlp": (128, 200, 5), "paper": (256, 2, 2)}
PAPER_PARAMS = 647_081
SUBPIXEL_TAPS = (((3, 1), (1, 0)), ((2, 0), (0, 1)))  # (kernel taps, padding) per phase


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one-line error, exit code 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def init_params(model, seed, np):
    """PyTorch-style U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases."""
    rng = np.random.default_rng(seed)
    u = lambda shape, fan_in: rng.uniform(-1, 1, shape).astype(np.float32) / math.sqrt(fan_in)
    lin = lambda i, o: {"w": u((i, o), i), "b": u((o,), i)}
    conv = lambda o, i: {"w": u((o, i, 4, 4), i * 16), "b": u((o,), i * 16)}  # OIHW
    convt = lambda i, o: {"w": u((i, o, 4, 4), o * 16), "b": u((o,), o * 16)}  # PyTorch IOHW
    if model == "mlp":
        return {"enc": lin(PIXELS, 400), "mu": lin(400, LATENT), "logvar": lin(400, LATENT),
                "dec1": lin(LATENT, 400), "dec2": lin(400, PIXELS)}
    return {"conv1": conv(64, 1), "conv2": conv(128, 64), "mu": lin(6272, LATENT),
            "logvar": lin(6272, LATENT), "dec": lin(LATENT, 6272),
            "convt1": convt(128, 64), "convt2": convt(64, 1)}


def make_step(model, convt_impl, jax):
    jnp, lax, tmap = jax.numpy, jax.lax, jax.tree_util.tree_map
    dn = ("NCHW", "OIHW", "NCHW")
    lin = lambda p, x: x @ p["w"] + p["b"]
    bias = lambda p: p["b"][None, :, None, None]
    conv = lambda p, x: lax.conv_general_dilated(x, p["w"], (2, 2), ((1, 1), (1, 1)),
                                                 dimension_numbers=dn) + bias(p)

    def convt(p, x):
        if convt_impl == "lax":
            # PyTorch ConvTranspose padding p is lax padding k-1-p = 2 (7 -> 14 -> 28);
            # transpose_kernel=True reads the PyTorch (in, out, kH, kW) weight.
            return lax.conv_transpose(x, p["w"], (2, 2), ((2, 2), (2, 2)),
                                      dimension_numbers=dn, transpose_kernel=True) + bias(p)
        # Sub-pixel form of the same map: output phase (a, b) is a stride-1 2x2 conv of x
        # (even outputs 2j use x[j-1] w[3] + x[j] w[1], odd 2j+1 use x[j] w[2] + x[j+1] w[0]),
        # then interleaved. Avoids XLA:CPU's slow dilated conv in the weight gradient.
        (n, _, h, w), o = x.shape, p["w"].shape[1]
        rows = [jnp.stack([lax.conv_general_dilated(
                    x, p["w"][:, :, ka][:, :, :, kb].transpose(1, 0, 2, 3), (1, 1), (pa, pb),
                    dimension_numbers=dn) for kb, pb in SUBPIXEL_TAPS], -1)
                for ka, pa in SUBPIXEL_TAPS]
        return jnp.stack(rows, 3).reshape(n, o, 2 * h, 2 * w) + bias(p)

    relu = jax.nn.relu

    def encode(p, x):
        if model == "mlp":
            h = relu(lin(p["enc"], x))
        else:
            h = x.reshape(-1, 1, 28, 28)
            h = relu(conv(p["conv2"], relu(conv(p["conv1"], h)))).reshape(x.shape[0], 6272)
        return lin(p["mu"], h), lin(p["logvar"], h)

    def decode(p, z):
        if model == "mlp":
            return lin(p["dec2"], relu(lin(p["dec1"], z)))
        h = relu(lin(p["dec"], z)).reshape(-1, 128, 7, 7)
        return convt(p["convt2"], relu(convt(p["convt1"], h))).reshape(z.shape[0], PIXELS)

    def loss_fn(p, x, eps):
        mu, logvar = encode(p, x)
        logits = decode(p, mu + jnp.exp(0.5 * logvar) * eps)
        bce = jnp.sum(jax.nn.softplus(logits) - x * logits, axis=1)  # BCE with logits
        kl = -0.5 * jnp.sum(1 + logvar - mu * mu - jnp.exp(logvar), axis=1)
        return jnp.sum(bce + kl)

    def step(state, x):
        p, m, v, t, key = state
        key, sub = jax.random.split(key)
        eps = jax.random.normal(sub, (x.shape[0], LATENT))
        loss, g = jax.value_and_grad(loss_fn)(p, x, eps)
        # Adam as torch.optim.Adam(weight_decay=WD): L2 folded into the gradient.
        t = t + 1
        g = tmap(lambda g, p: g + WD * p, g, p)
        m = tmap(lambda m, g: B1 * m + (1 - B1) * g, m, g)
        v = tmap(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
        bc1, bc2 = 1 - B1 ** t, 1 - B2 ** t
        p = tmap(lambda p, m, v: p - LR * (m / bc1) / (jnp.sqrt(v / bc2) + EPS), p, m, v)
        return (p, m, v, t, key), loss

    return jax.jit(step, donate_argnums=0)


def bench(model, a, jax, np):
    batch, steps, warmup = DEFAULTS[model]
    batch, steps = a.batch or batch, a.steps or steps
    warmup = warmup if a.warmup is None else a.warmup
    params = jax.tree_util.tree_map(jax.numpy.asarray, init_params(model, a.seed, np))
    n_params = sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
    if model == "paper":
        assert n_params == PAPER_PARAMS, f"paper model has {n_params} parameters"
    zeros = lambda: jax.tree_util.tree_map(jax.numpy.zeros_like, params)
    state = (params, zeros(), zeros(), jax.numpy.float32(0), jax.random.PRNGKey(a.seed))
    rng = np.random.default_rng(a.seed)
    x = jax.device_put((rng.random((batch, PIXELS)) < 0.5).astype(np.float32))
    step = make_step(model, a.convt, jax)

    t0 = time.perf_counter()
    state, loss = jax.block_until_ready(step(state, x))  # compile + one step
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        state, loss = step(state, x)
    jax.block_until_ready(state)

    secs, cpu = [], []
    for _ in range(a.repeats):
        w0, c0 = time.perf_counter(), time.process_time()  # process_time: all threads
        for _ in range(steps):
            state, loss = step(state, x)
        jax.block_until_ready((state, loss))
        secs.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    if not math.isfinite(float(loss)):
        raise SystemExit(f"vae_jax.py: error: non-finite loss {float(loss)}")
    return {
        "model": model, "convt": a.convt if model == "paper" else None, "batch": batch,
        "params": n_params, "steps": steps, "repeats": a.repeats, "warmup": warmup,
        "compile_seconds": compile_s,
        "seconds_min": min(secs), "seconds_median": statistics.median(secs),
        "examples_per_second_best": batch * steps / min(secs),
        "examples_per_second_median": batch * steps / statistics.median(secs),
        "cpu_per_wall": sum(cpu) / sum(secs), "final_loss": float(loss),
    }


def main():
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["mlp", "paper", "both"], default="both")
    p.add_argument("--threads", type=int, choices=[1, 2], default=1)
    p.add_argument("--steps", type=int, help="timed steps per repeat (default: mlp 200, paper 2)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, help="untimed steps after compiling (mlp 5, paper 2)")
    p.add_argument("--batch", type=int, help="default: mlp 128, paper 256")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--convt", choices=["lax", "subpixel"], default="lax",
                   help="paper ConvTranspose: lax.conv_transpose or equivalent sub-pixel convs")
    a = p.parse_args()
    at_least = lambda v, lo: v is None or v >= lo
    if not (at_least(a.steps, 1) and at_least(a.batch, 1) and a.repeats >= 1
            and at_least(a.warmup, 0) and a.seed >= 0):
        p.error("need --steps, --batch, --repeats >= 1 and --warmup, --seed >= 0")
    if a.threads > (os.cpu_count() or 1):
        p.error(f"--threads {a.threads} exceeds the {os.cpu_count()} CPUs")

    # Both must happen before jax is imported: XLA reads its flags and sizes its pools once.
    if a.threads == 1:
        os.environ["XLA_FLAGS"] = ONE_THREAD_FLAGS
    os.sched_setaffinity(0, set(range(a.threads)))
    try:
        import jax
        import jaxlib
    except ImportError:
        print('vae_jax.py: error: jax is not installed; run: pip install "jax[cpu]"',
              file=sys.stderr)
        sys.exit(2)
    import numpy as np

    jax.config.update("jax_platforms", "cpu")
    base = {"peer": "jax", "jax_version": jax.__version__, "jaxlib_version": jaxlib.__version__,
            "threads": a.threads, "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "affinity": sorted(os.sched_getaffinity(0)), "loadavg_1min": os.getloadavg()[0]}
    for model in (["mlp", "paper"] if a.model == "both" else [a.model]):
        print(json.dumps({**base, **bench(model, a, jax, np)}), flush=True)


if __name__ == "__main__":
    main()
