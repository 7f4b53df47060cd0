"""Small helpers shared by the method tests."""
import torch


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    """The names of ``module``'s tensors that differ from ``before``."""
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}
