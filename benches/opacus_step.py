"""Time Opacus's steps on the workloads of benches/dp_step.rs (CPU, float32, 2 threads).

Modes: non-private (plain PyTorch), hooks (GradSampleModule, materialised per-sample grads),
ghost (Opacus ghost clipping, two backward passes). DP steps include Opacus's noise
(torch's generator, secure_mode=False) and the optimizer step. Prints the median step time.
W5 is crowdout's text transformer (class Encoder), built from nn.Embedding, nn.LayerNorm and
nn.Linear, whose grad samplers Opacus has (its DPMultiheadAttention is made of the same Linear
projections; a functional attention keeps the layout identical to ours).
Run: .venv/bin/python benches/opacus_step.py [W1 W2 ...]
     .venv/bin/python benches/opacus_step.py --serve W1 ghost   (timed blocks on demand, for
     benches/versus.py: a line K on stdin runs K steps and prints the mean seconds per step)
"""
import statistics, sys, time, warnings
import torch, torch.nn as nn, torch.nn.functional as F

warnings.filterwarnings("ignore")
torch.set_num_threads(2)
import opacus
from opacus import PrivacyEngine


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 8, 2, padding=3), nn.ReLU(), nn.MaxPool2d(2, 1),
        nn.Conv2d(16, 32, 4, 2), nn.ReLU(), nn.MaxPool2d(2, 1),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        gn = lambda c: nn.GroupNorm(min(32, c), c)
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.n1 = gn(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.n2 = gn(cout)
        self.sc = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), gn(cout))
                   if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        o = F.relu(self.n1(self.c1(x)))
        return F.relu(self.n2(self.c2(o)) + self.sc(x))


def resnet18gn():
    """torchvision's resnet18 layout with GroupNorm, a 1-channel 3x3 stem and no max-pool (no torchvision here)."""
    layers = [nn.Conv2d(1, 64, 3, 1, 1, bias=False), nn.GroupNorm(32, 64), nn.ReLU()]
    cin = 64
    for stage, cout in enumerate([64, 128, 256, 512]):
        for b in range(2):
            layers.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1)); cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10)]
    return nn.Sequential(*layers)


def softmax():
    return nn.Linear(104, 10)


class Encoder(nn.Module):
    """crowdout's transformer classifier (src/models/transformer.rs) in plain PyTorch modules that
    Opacus has grad samplers for: token and position embeddings (positions as an nn.Embedding over
    0..T-1, so the per-sample gradient is per example), pre-LayerNorm blocks of fused-QKV multi-head
    attention with a padding mask (torch's fused scaled_dot_product_attention, as ours; it has no
    parameters, so Opacus's hooks never see it) and a GELU feed-forward, final LayerNorm, mean over non-padding
    tokens, linear head. (Position ids are made contiguous: Opacus's ghost embedding norm calls
    .view on its input ids.)"""

    def __init__(self, vocab=2016, t=128, d=64, heads=4, blocks=2, ff=128, classes=2):
        super().__init__()
        self.heads, self.t = heads, t
        self.tok = nn.Embedding(vocab, d); self.pos = nn.Embedding(t, d)
        self.blocks = nn.ModuleList()
        for _ in range(blocks):
            self.blocks.append(nn.ModuleDict(dict(ln1=nn.LayerNorm(d), qkv=nn.Linear(d, 3 * d), out=nn.Linear(d, d),
                                                  ln2=nn.LayerNorm(d), ff1=nn.Linear(d, ff), ff2=nn.Linear(ff, d))))
        self.ln = nn.LayerNorm(d); self.head = nn.Linear(d, classes)

    def forward(self, ids):
        n, t = ids.shape
        mask = (ids != 0).float()
        h = self.tok(ids) + self.pos(torch.arange(t).expand(n, t).contiguous())
        bias = ((mask - 1.0) * 1e4).view(n, 1, 1, t)
        for b in self.blocks:
            qkv = b["qkv"](b["ln1"](h))
            d = qkv.shape[-1] // 3; dh = d // self.heads
            q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(n, t, self.heads, dh).transpose(1, 2) for i in range(3))
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=dh ** -0.5)
            h = h + b["out"](o.transpose(1, 2).reshape(n, t, d))
            h = h + b["ff2"](F.gelu(b["ff1"](b["ln2"](h))))
        h = self.ln(h)
        pooled = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
        return self.head(pooled)


WORKLOADS = {
    "W1-mlp-b256": (mlp, (256, 784), 30),
    "W2-cnn-b256": (cnn, (256, 1, 28, 28), 20),
    "W3-resnet18gn-b32": (resnet18gn, (32, 1, 28, 28), 5),
    "W4-softmax104-b512": (softmax, (512, 104), 100),
    # ids uniform in 3..2016 (no padding), labels 0..1, as benches/dp_step.rs's make_tokens
    "W5-transformer-t128-b64": (Encoder, (64, 128), 20),
}


def time_it(fn, reps):
    for _ in range(max(2, reps // 5)):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def make_step(name, mode):
    """A zero-argument function doing one step of `mode` ("nonprivate", "hooks" or "ghost")."""
    make, shape, _ = WORKLOADS[name]
    torch.manual_seed(0)
    if name.startswith("W5"):
        x = torch.randint(3, 2016, shape); y = torch.randint(0, 2, (shape[0],))
    else:
        x = torch.rand(shape); y = torch.randint(0, 10, (shape[0],))
    model = make(); opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    if mode == "nonprivate":
        def np_step():
            opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
        return np_step
    ds = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(ds, batch_size=shape[0])
    pe = PrivacyEngine()
    crit = nn.CrossEntropyLoss()
    if mode == "ghost":
        model, opt, crit, _ = pe.make_private(module=model, optimizer=opt, data_loader=loader, criterion=crit,
                                              noise_multiplier=1.0, max_grad_norm=1.0, grad_sample_mode="ghost",
                                              poisson_sampling=False)
    else:
        model, opt, _ = pe.make_private(module=model, optimizer=opt, data_loader=loader,
                                        noise_multiplier=1.0, max_grad_norm=1.0, poisson_sampling=False)
    opt.expected_batch_size = shape[0]
    def dp_step():
        opt.zero_grad(); loss = crit(model(x), y); loss.backward(); opt.step()
    return dp_step


def run(name):
    reps = WORKLOADS[name][2]
    out = {}
    for mode in ["nonprivate", "hooks", "ghost"]:
        try:
            out[mode] = time_it(make_step(name, mode), reps)
        except Exception as e:  # report, don't hide
            out[mode] = float("nan"); print(f"# {name} {mode} failed: {e}", file=sys.stderr)
    print(name, " ".join(f"{k}={v*1e3:.3f}ms" for k, v in out.items()), flush=True)


def serve(prefix, mode):
    name = next(k for k in WORKLOADS if k.startswith(prefix))
    step = make_step(name, mode)
    for _ in range(5):
        step()
    print("ready", flush=True)
    for line in sys.stdin:
        k = int(line)
        t0 = time.perf_counter()
        for _ in range(k):
            step()
        print((time.perf_counter() - t0) / k, flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], sys.argv[3])
        sys.exit(0)
    print(f"# opacus {opacus.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for n in (sys.argv[1:] or list(WORKLOADS)):
        for k in WORKLOADS:
            if k.startswith(n):
                run(k)
