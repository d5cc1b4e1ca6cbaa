"""PyTorch twins of glassnet's ``resnet`` and ``vit`` presets: the same layers, sizes and
parameter counts, for the speed benchmark (bench_train.py) and for accuracy parity.

Each function takes the ``torch`` module as its first argument, so this file imports without
PyTorch (the tests check the parameter counts where torch is installed).
"""

from __future__ import annotations


def torch_resnet(torch, in_channels: int = 1, classes: int = 10, widths=(16, 32, 64), blocks: int = 2):
    """glassnet.models.resnet: 3x3 stem + BN + ReLU, ``blocks`` basic blocks per width (stride 2
    entering each stage after the first, 1x1 conv + BN shortcut where the shape changes),
    global average pooling, Linear."""
    nn = torch.nn

    class Residual(nn.Module):  # gn.Residual: y = block(x) + shortcut(x), then the ReLU after it
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
            )  # fmt: skip
            self.shortcut = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
                )

        def forward(self, x):
            return self.block(x) + self.shortcut(x)

    net = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    c = widths[0]
    for i, width in enumerate(widths):
        for j in range(blocks):
            net += [Residual(c, width, 2 if i > 0 and j == 0 else 1), nn.ReLU()]
            c = width
    return nn.Sequential(*net, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def torch_vit(torch, in_channels: int = 1, classes: int = 10, image: int = 28, patch: int = 4, dim: int = 64,
              depth: int = 6, heads: int = 4, mlp: int = 128, dropout: float = 0.1):  # fmt: skip
    """glassnet.models.vit: Conv2d patch embedding (stride = kernel = ``patch``), class token,
    learned position embedding (N(0, 0.02^2), the class token zero, as glassnet and torchvision),
    dropout, ``depth`` pre-norm GELU encoder layers, LayerNorm on the class token, Linear."""
    nn = torch.nn
    tokens = (image // patch) ** 2

    class ViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.randn(tokens + 1, dim) * 0.02)
            self.dropout = nn.Dropout(dropout)
            layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout, activation="gelu", batch_first=True,
                                               norm_first=True)  # fmt: skip
            self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, classes)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2)  # (N, E, H', W') -> (N, T, E)
            t = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1) + self.pos
            t = self.encoder(self.dropout(t))
            return self.head(self.norm(t[:, 0]))

    return ViT()


def torch_optimizer(torch, preset: str, model):
    """The preset's optimizer: Adam 1e-3 (resnet), AdamW 1e-3 with weight decay 0.01 (vit)."""
    if preset == "vit":
        return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    return torch.optim.Adam(model.parameters(), lr=1e-3)


TWINS = {"resnet": torch_resnet, "vit": torch_vit}
