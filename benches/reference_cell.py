"""The reference Fashion-MNIST cell of issue 19: one source of its settings for benches/cell.py,
benches/throughput.py and benches/opacus_cell.py (no torch import here, so the drivers stay light)."""

REFERENCE = dict(epochs=3, batch_size=256, lr=0.05, momentum=0.9, epsilon=4.0, delta=1e-5, max_grad_norm=1.0,
                 alpha=0.1)


def add_cell_args(p):
    """The reference cell's training flags, with REFERENCE's values as defaults."""
    r = REFERENCE
    p.add_argument("--epochs", type=int, default=r["epochs"])
    p.add_argument("--batch-size", type=int, default=r["batch_size"])
    p.add_argument("--lr", type=float, default=r["lr"])
    p.add_argument("--momentum", type=float, default=r["momentum"])
    p.add_argument("--epsilon", type=float, default=r["epsilon"])
    p.add_argument("--delta", type=float, default=r["delta"])
    p.add_argument("--max-grad-norm", type=float, default=r["max_grad_norm"])


