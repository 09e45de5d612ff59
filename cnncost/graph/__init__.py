"""spec -> torch.fx GraphModule, and the walks over it."""
