"""Starting training processes: torchrun on one or several machines, and SLURM batch scripts.

:func:`launch` runs PyTorch's own launcher (``python -m torch.distributed.run``, torchrun)
with the script; several machines meet at ``master_addr:master_port`` (torchrun's static
rendezvous: every machine is started with the same ``nnodes`` and its own ``node_rank``).
:func:`slurm_script` writes the ``sbatch`` script that does the same on a SLURM cluster: one
task per node, each running torchrun with the c10d rendezvous on the job's first node.

This module imports nothing heavy (no torch): the command line uses it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from deeptoolbox.errors import OptionError

__all__ = ["launch", "launch_command", "slurm_script", "write_slurm_script", "submit"]

DEFAULT_PORT = 29500


def _positive(where: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{where}: `{name}` must be a positive int. Received: {name}={value!r}.")
    return value


def _check_script(where: str, script: str | os.PathLike) -> None:
    if not Path(script).is_file():
        raise OptionError(f"{where}: `script` must be a Python file. Received: {str(script)!r}.")


def launch_command(
    script: str | os.PathLike,
    nproc: int,
    args: Sequence[str] = (),
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | None = None,
    **torchrun: object,
) -> list[str]:
    """The torchrun command line :func:`launch` runs.

    Example:
        >>> launch_command("train.py", 4, nnodes=2, node_rank=1, master_addr="10.0.0.1",
        ...                master_port=29400)[3:]
        ['--nproc-per-node=4', '--nnodes=2', '--node-rank=1', '--master-addr=10.0.0.1', '--master-port=29400', 'train.py']
        >>> launch_command("train.py", 2, nnodes=2)
        Traceback (most recent call last):
        ...
        deeptoolbox.errors.OptionError: launch: with nnodes=2 machines, `master_addr` must name the machine of node_rank 0 (a host name or IP address every machine reaches), e.g. master_addr='10.0.0.1'. Received: master_addr=None.
    """  # noqa: E501
    where = "launch"
    _positive(where, "nproc", nproc)
    _positive(where, "nnodes", nnodes)
    if (
        isinstance(node_rank, bool)
        or not isinstance(node_rank, int)
        or not (0 <= node_rank < nnodes)
    ):
        raise OptionError(
            f"{where}: `node_rank` must be an int from 0 to nnodes - 1 = {nnodes - 1} (this "
            f"machine's number). Received: node_rank={node_rank!r}."
        )
    if master_port is not None and (
        isinstance(master_port, bool) or not isinstance(master_port, int)
        or not 1 <= master_port <= 65535
    ):  # fmt: skip
        raise OptionError(
            f"{where}: `master_port` must be a port number from 1 to 65535. Received: "
            f"master_port={master_port!r}."
        )
    if nnodes > 1 and not master_addr and "rdzv_endpoint" not in torchrun:
        raise OptionError(
            f"{where}: with nnodes={nnodes} machines, `master_addr` must name the machine of "
            "node_rank 0 (a host name or IP address every machine reaches), e.g. "
            f"master_addr='10.0.0.1'. Received: master_addr={master_addr!r}."
        )
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    rendezvous = nnodes > 1 or master_addr or master_port or "rdzv_endpoint" in torchrun
    if not rendezvous:
        command.append("--standalone")  # one machine: a free port, found by torchrun
    if nnodes > 1:
        command += [f"--nnodes={nnodes}", f"--node-rank={node_rank}"]
    if master_addr:
        command.append(f"--master-addr={master_addr}")
    if master_addr or master_port:
        command.append(f"--master-port={master_port or DEFAULT_PORT}")
    for key, value in torchrun.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    return [*command, str(script), *map(str, args)]


def launch(
    script: str | os.PathLike,
    nproc: int,
    args: Sequence[str] = (),
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | None = None,
    **torchrun: object,
) -> int:
    """Run ``script`` in ``nproc`` processes per machine with torchrun; returns the exit code.

    Each process sees RANK / WORLD_SIZE / LOCAL_RANK, so ``train()`` with
    ``execution_environment="parallel"`` (CPU, gloo) or ``"multi-gpu"`` (NCCL) joins the group.
    Several machines: run ``launch`` on each with the same ``nnodes``, its own ``node_rank``
    (0 on the machine at ``master_addr``) and the same ``master_port``. Extra keyword
    arguments become torchrun flags (``rdzv_backend="c10d"`` -> ``--rdzv-backend c10d``).

    Example:
        >>> launch("no-such-script.py", 0)
        Traceback (most recent call last):
        ...
        deeptoolbox.errors.OptionError: launch: `nproc` must be a positive int. Received: nproc=0.
    """
    command = launch_command(
        script, nproc, args, nnodes=nnodes, node_rank=node_rank, master_addr=master_addr,
        master_port=master_port, **torchrun,
    )  # fmt: skip
    _check_script("launch", script)
    return subprocess.run(command, check=False).returncode


def slurm_script(
    script: str | os.PathLike,
    args: Sequence[str] = (),
    *,
    nnodes: int = 1,
    nproc_per_node: int = 1,
    gpus_per_node: int | None = None,
    job_name: str | None = None,
    partition: str | None = None,
    time: str | None = None,
    account: str | None = None,
    cpus_per_task: int | None = None,
    master_port: int = DEFAULT_PORT,
    python: str | None = None,
) -> str:
    """The text of an ``sbatch`` script running ``script`` on ``nnodes`` SLURM nodes with
    ``nproc_per_node`` processes each (one per GPU: ``gpus_per_node`` defaults to it).

    One SLURM task per node runs torchrun; the nodes meet at the job's first node (c10d
    rendezvous, job id as rendezvous id). ``python`` defaults to this interpreter.

    Example:
        >>> text = slurm_script("train.py", ["--epochs", "3"], nnodes=2, nproc_per_node=4,
        ...                     partition="gpu", time="02:00:00")
        >>> [line for line in text.splitlines() if "--nodes" in line or "gpus" in line]
        ['#SBATCH --nodes=2', '#SBATCH --gpus-per-node=4']
    """
    where = "deeptoolbox train --slurm"
    _positive(where, "nnodes", nnodes)
    _positive(where, "nproc_per_node", nproc_per_node)
    gpus = nproc_per_node if gpus_per_node is None else gpus_per_node
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise OptionError(
            f"{where}: `gpus_per_node` must be an int >= 0 (0: CPU nodes). Received: {gpus!r}."
        )
    if cpus_per_task is not None:
        _positive(where, "cpus_per_task", cpus_per_task)
    for name, value in (("job_name", job_name), ("partition", partition), ("time", time),
                        ("account", account)):  # fmt: skip
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise OptionError(
                f"{where}: `{name}` must be a non-empty word without spaces. Received: {value!r}."
            )
    script_path = Path(script).resolve()
    name = job_name or script_path.stem
    directives = [f"--job-name={name}", f"--nodes={nnodes}", "--ntasks-per-node=1"]
    if gpus:
        directives.append(f"--gpus-per-node={gpus}")
    if cpus_per_task:
        directives.append(f"--cpus-per-task={cpus_per_task}")
    for flag, value in (("partition", partition), ("time", time), ("account", account)):
        if value:
            directives.append(f"--{flag}={value}")
    directives.append(f"--output={name}-%j.out")
    interpreter = shlex.quote(python or sys.executable)
    run = " ".join(shlex.quote(str(a)) for a in (script_path, *args))
    lines = [
        "#!/bin/bash",
        f"# Written by `deeptoolbox train --slurm`: {nnodes} node(s) x {nproc_per_node} "
        "process(es), torchrun on each node.",
        *(f"#SBATCH {d}" for d in directives),
        "set -euo pipefail",
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk "NR == 1")',
        f"MASTER_PORT=${{MASTER_PORT:-{master_port}}}",
        "export MASTER_ADDR MASTER_PORT",
        f"srun --kill-on-bad-exit=1 {interpreter} -m torch.distributed.run \\",
        f'    --nnodes="$SLURM_NNODES" --nproc-per-node={nproc_per_node} \\',
        '    --rdzv-id="$SLURM_JOB_ID" --rdzv-backend=c10d \\',
        '    --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" \\',
        f"    {run}",
    ]
    return "\n".join(lines) + "\n"


def write_slurm_script(path: str | os.PathLike, script: str | os.PathLike, args=(), **kw) -> Path:
    """Write :func:`slurm_script` to ``path`` (made executable); returns the path.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / "train.py").write_text("")
        0
        >>> write_slurm_script(folder / "job.sbatch", folder / "train.py").read_text()[:11]
        '#!/bin/bash'
    """
    _check_script("deeptoolbox train --slurm", script)
    target = Path(path)
    target.write_text(slurm_script(script, args, **kw))
    target.chmod(0o755)
    return target


def submit(path: str | os.PathLike) -> int:
    """Submit a written batch script with ``sbatch``; returns sbatch's exit code.

    Example:
        >>> import os
        >>> os.environ["PATH"], saved = "", os.environ["PATH"]
        >>> try:
        ...     submit("job.sbatch")
        ... except Exception as err:
        ...     print(str(err)[:55])
        ... finally:
        ...     os.environ["PATH"] = saved
        deeptoolbox train --submit: SLURM's `sbatch` command is
    """
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise OptionError(
            "deeptoolbox train --submit: SLURM's `sbatch` command is not on this machine's "
            f"PATH. The batch script is written: copy it to the cluster's login node and run "
            f"`sbatch {path}` there, or leave out --submit."
        )
    return subprocess.run([sbatch, str(path)], check=False).returncode
