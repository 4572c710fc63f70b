"""Write the pictures of docs/explain.md into docs/images/ (run from the repository root).

The page's own examples are run, in order, in a temporary folder; the figures they save are
copied here, and the deep dream images are drawn from the page's ``dreams``. Run:
``.venv/bin/python docs/images/make_explain_images.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "explain.md"
COPIES = {
    "shapes-explained.png": "explain-shapes.png",
    "signals-explained.png": "explain-signals.png",
}


def run_page(folder: Path) -> dict:
    namespace: dict = {"__name__": "__docs__"}
    previous = Path.cwd()
    os.chdir(folder)
    try:
        for number, block in enumerate(
            re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL), 1
        ):
            exec(compile(block, f"explain.md[block {number}]", "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        namespace = run_page(Path(folder))
        for name, target in COPIES.items():
            shutil.copyfile(Path(folder) / name, HERE / target)
    dreams, classes = namespace["dreams"], namespace["net"].classes
    fig, axes = plt.subplots(1, len(dreams), figsize=(2 * len(dreams), 2.2))
    for ax, image, name in zip(axes, dreams, classes, strict=False):
        ax.imshow(image[0].numpy(), cmap="gray")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(HERE / "explain-dream.png", dpi=100)
    plt.close(fig)
    for name in [*COPIES.values(), "explain-dream.png"]:
        print(HERE / name, (HERE / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
