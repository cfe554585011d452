"""How far mixed precision moves the guided loss: penalty error and gradient direction vs float32.

For each guidance loss, model, device and precision it computes the penalty of one batch (red
corner, green centre) in float32 and under autocast, and prints the relative error of the
penalty and the cosine between the parameter gradients of the two. tests/test_amp.py asserts
bounds on the CPU; this prints the numbers on whatever machine runs it (bench/gpu_check.sh runs
it on the GPU).

    python bench/amp_agreement.py                               # CPU, bf16, small_cnn
    python bench/amp_agreement.py --device cuda --models small_cnn resnet18 --amp bf16 fp16
"""

from __future__ import annotations

import argparse

import torch  # noqa: E402

from app.engine.amp import AmpPolicy  # noqa: E402
from loss import build_guidance  # noqa: E402
from loss.guided import scaling_scores  # noqa: E402
from models import build_model, pick_device  # noqa: E402


def batch(seed: int, n: int, side: int, device: torch.device):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, side, side, generator=generator)
    targets = torch.randint(0, 10, (n,), generator=generator)
    masks = torch.zeros(n, side, side)
    masks[:, : side // 4, : side // 4] = 1.0  # red corner
    masks[:, 3 * side // 8 : 3 * side // 4, 3 * side // 8 : 3 * side // 4] = -1.0  # green centre
    return images.to(device), targets.to(device), masks.to(device)


def flat_gradient(value: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    grads = torch.autograd.grad(value, list(model.parameters()), allow_unused=True, materialize_grads=True)
    return torch.cat([g.float().flatten() for g in grads])


def compare(loss_name: str, model_name: str, amp: str, seed: int, side: int, device: torch.device):
    """(relative penalty error, gradient cosine, loss scale used) of ``amp`` against float32, eval mode."""
    torch.manual_seed(seed)
    model = build_model(model_name, 10).to(device).eval()
    guidance = build_guidance(loss_name, model)
    images, targets, masks = batch(seed, 8, side, device)
    exact = guidance(model, images, targets, masks)
    # fp16 as the trainer runs it (GradScaler): the scores scaled before autograd.grad and the
    # input gradients unscaled after, the loss scaled for the parameter backward; the scale
    # starts at 2^16 and halves while anything overflows (a skipped step in training).
    scale = 2.0**16 if amp == "fp16" else 1.0
    while True:
        with AmpPolicy(amp, device.type).autocast(), scaling_scores(guidance, scale):
            mixed = guidance(model, images, targets, masks)
        mixed_gradient = flat_gradient(mixed * scale, model) / scale
        if (torch.isfinite(mixed) and torch.isfinite(mixed_gradient).all()) or scale <= 1.0:
            break
        scale /= 2
    error = float(((mixed - exact).abs() / exact.abs().clamp_min(1e-12)).detach())
    cosine = float(torch.nn.functional.cosine_similarity(flat_gradient(exact, model), mixed_gradient, dim=0))
    return error, cosine, scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["small_cnn"])
    parser.add_argument("--losses", nargs="+", default=["rrr", "punisher"])
    parser.add_argument("--amp", nargs="+", default=["bf16"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--side", type=int, default=32)
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {args.side} px, batch 8, eval mode")
    print("| model | loss | amp | seed | penalty error | gradient cosine | loss scale |")
    print("|---|---|---|---|---|---|---|")
    for model_name in args.models:
        for loss_name in args.losses:
            for amp in args.amp:
                for seed in args.seeds:
                    error, cosine, scale = compare(loss_name, model_name, amp, seed, args.side, device)
                    print(f"| {model_name} | {loss_name} | {amp} | {seed} | {error:.2%} | {cosine:.3f} | {scale:g} |", flush=True)


if __name__ == "__main__":
    main()
