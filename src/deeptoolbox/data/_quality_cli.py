"""``deeptoolbox data check PATH``: print the data-quality report of a folder."""

from __future__ import annotations

import os

from deeptoolbox.data._quality import quality_report

__all__ = ["check_command"]


def check_command(
    path: str | os.PathLike,
    *,
    json_path: str | None = None,
    plot_path: str | None = None,
    csv_path: str | None = None,
) -> int:
    """Print the report of ``path``; write it as JSON, a picture and a CSV table when asked.
    Returns 1 when a finding is an error (unreadable files, leakage, conflicting labels,
    NaN values), else 0.

    Example:
        >>> import tempfile
        >>> from deeptoolbox.datasets import digits, write_image_folder
        >>> images, labels = digits()
        >>> folder = write_image_folder(tempfile.mkdtemp(), images[:20], labels[:20])
        >>> check_command(folder)  # doctest: +ELLIPSIS
        Data-quality report: 20 observations (0 unreadable), 0 finding(s)
        ...
        0
    """
    report = quality_report(path)
    print(report)
    if json_path:
        report.to_json(json_path)
        print(f"wrote {os.path.abspath(json_path)}")
    if plot_path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.close(report.plot(plot_path))
        print(f"wrote {os.path.abspath(plot_path)}")
    if csv_path:
        from deeptoolbox._atomic import atomic_path

        with atomic_path(csv_path) as temporary:
            report.to_frame().to_csv(temporary, index=False)
        print(f"wrote {os.path.abspath(csv_path)}")
    return 1 if report.errors else 0
