"""Several machines and clusters: `deeptoolbox train --nnodes` (two "machines" on localhost),
SLURM batch scripts, validation reduced over processes, a NaN on one process stops all."""

import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import safetensors.torch
import torch

from deeptoolbox.cli import main
from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, train
from deeptoolbox.training._launch import launch, launch_command, slurm_script

SCRIPT = textwrap.dedent("""
    import os, sys, torch, safetensors.torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train

    def setup():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        y = (x[:, 0] + x[:, 1] > 0).long()
        torch.manual_seed(0)
        net = Network([L.FeatureInput(4), L.Dense(16), L.ReLU(), L.Dense(2), L.Softmax()])
        return net, x, y

    def options(**kw):
        return TrainingOptions(solver="sgdm", initial_learn_rate=0.1, max_epochs=2,
                               mini_batch_size=32, shuffle="every-epoch", seed=3,
                               output_network="last-iteration", **kw)

    if __name__ == "__main__":
        out = sys.argv[1]
        net, x, y = setup()
        rank = os.environ["RANK"]
        result = train(net, (x, y), "crossentropy", options(
            execution_environment="parallel", verbose=False, validation_data=(x[:70], y[:70]),
            validation_frequency=3, metrics=["accuracy"]))
        safetensors.torch.save_file(
            {k: v.contiguous() for k, v in result.network.state_dict().items()},
            f"{out}.rank{rank}")
        with open(f"{out}.rank{rank}.txt", "w") as f:
            f.write(f"{os.environ['WORLD_SIZE']} {os.environ['GROUP_RANK']} "
                    f"{result.final_validation['loss']!r} "
                    f"{result.final_validation['accuracy']!r}")
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_machines_on_localhost_train_together_as_one(tmp_path):
    script = tmp_path / "two_nodes.py"
    script.write_text(SCRIPT)
    out = tmp_path / "weights"
    port = str(free_port())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    started = time.monotonic()
    machines = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deeptoolbox.cli",
                "train",
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                port,
                "--nproc-per-node",
                "1",
                str(script),
                str(out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    logs = [m.communicate(timeout=120)[0] for m in machines]
    assert [m.returncode for m in machines] == [0, 0], logs
    assert time.monotonic() - started < 90  # about 30 s on 2 busy cores
    reports = [(tmp_path / f"weights.rank{r}.txt").read_text().split() for r in (0, 1)]
    assert [r[:2] for r in reports] == [["2", "0"], ["2", "1"]]  # one group, two machines
    assert reports[0][2:] == reports[1][2:]  # the same reduced validation on both
    # the same training in one process gives the same network and validation figures
    namespace = {"__name__": "reference"}
    exec(SCRIPT, namespace)
    net, x, y = namespace["setup"]()
    result = train(net, (x, y), "crossentropy", namespace["options"](
        verbose=False, validation_data=(x[:70], y[:70]), validation_frequency=3,
        metrics=["accuracy"]))  # fmt: skip
    for rank in (0, 1):
        weights = safetensors.torch.load_file(f"{out}.rank{rank}")
        for key, value in result.network.state_dict().items():
            assert torch.allclose(value, weights[key], atol=1e-5), (rank, key)
    loss, accuracy = float(reports[0][2]), float(reports[0][3])
    assert loss == pytest.approx(result.final_validation["loss"], rel=1e-5)
    assert accuracy == pytest.approx(result.final_validation["accuracy"], abs=1e-9)


NAN_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.errors import TrainingError
    from deeptoolbox.training import TrainingOptions, train

    if __name__ == "__main__":
        torch.manual_seed(0)
        x = torch.randn(128, 3)
        y = (x[:, 0] > 0).long()
        x[33] = float("nan")  # batch 2 (32 per batch); odd: process 1's half of it
        net = Network([L.FeatureInput(3), L.Dense(2), L.Softmax()])
        options = TrainingOptions(max_epochs=50, mini_batch_size=32, shuffle="never",
                                  verbose=False, verbose_frequency=1,
                                  execution_environment="parallel")
        rank = os.environ["RANK"]
        try:
            train(net, (x, y), "crossentropy", options)
        except TrainingError as err:
            with open(sys.argv[1] + f".rank{rank}", "w") as f:
                f.write(str(err))
            sys.exit(3)
""")


@pytest.mark.slow
def test_a_nan_on_one_process_stops_every_process_with_the_error_on_rank_0(tmp_path):
    script = tmp_path / "nan_script.py"
    script.write_text(NAN_SCRIPT)
    started = time.monotonic()
    code = launch(script, 2, [str(tmp_path / "error")])
    assert code != 0
    assert time.monotonic() - started < 90  # nobody waits for a collective that never comes
    first = (tmp_path / "error.rank0").read_text()
    assert "the loss became nan at iteration 2 (epoch 1) in process 1 of 2" in first, first
    assert "every process stopped" in first
    assert (tmp_path / "error.rank1").read_text() == first  # stopped too, at the same place


def test_launch_commands_for_one_and_several_machines():
    one = launch_command("train.py", 2)
    assert one[1:] == ["-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
                       "train.py"]  # fmt: skip
    two = launch_command("train.py", 1, ["--epochs", "3"], nnodes=2, node_rank=1,
                         master_addr="10.0.0.1")  # fmt: skip
    assert two[3:] == ["--nproc-per-node=1", "--nnodes=2", "--node-rank=1",
                       "--master-addr=10.0.0.1", "--master-port=29500", "train.py", "--epochs",
                       "3"]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"nnodes": 2}, r"`master_addr` must name the machine of node_rank 0"),
        (
            {"nnodes": 2, "node_rank": 2, "master_addr": "h"},
            r"`node_rank` must be an int from 0 "
            r"to nnodes - 1 = 1.*node_rank=2",
        ),
        ({"nnodes": 0}, r"`nnodes` must be a positive int. Received: nnodes=0"),
        ({"master_port": 70000}, r"`master_port` must be a port number.*master_port=70000"),
    ],
)
def test_bad_launch_options_are_named(kwargs, match):
    with pytest.raises(OptionError, match=match):
        launch_command("train.py", 1, **kwargs)


def test_cli_reports_bad_machine_options(tmp_path, capsys):
    script = tmp_path / "s.py"
    script.write_text("")
    assert main(["train", "--nnodes", "2", str(script)]) == 2
    assert "`master_addr` must name" in capsys.readouterr().err
    assert main(["train", "--submit", str(script)]) == 2
    assert "add --slurm" in capsys.readouterr().err


def sbatch_directives(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"#SBATCH --([a-z-]+)=(\S+)", line)
        if match:
            found[match[1]] = match[2]
        else:
            assert not line.startswith("#SBATCH"), line
    return found


def fake_commands(folder, names_and_bodies):
    folder.mkdir()
    for name, body in names_and_bodies.items():
        path = folder / name
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(0o755)
    return folder


def test_slurm_script_is_valid_bash_with_the_asked_directives(tmp_path, capsys):
    script = tmp_path / "my_training.py"
    script.write_text("print('hi')\n")
    target = tmp_path / "job.sbatch"
    code = main(["train", "--slurm", "--nnodes", "4", "--nproc-per-node", "8", "--partition",
                 "gpu", "--time", "02:00:00", "--account", "proj1", "--cpus-per-task", "32",
                 "--sbatch-file", str(target), str(script), "--epochs", "3", "--name",
                 "a b"])  # fmt: skip
    assert code == 0 and f"wrote {target.resolve()}" in capsys.readouterr().out
    text = target.read_text()
    assert subprocess.run(["bash", "-n", str(target)]).returncode == 0
    assert sbatch_directives(text) == {
        "job-name": "my_training", "nodes": "4", "ntasks-per-node": "1", "gpus-per-node": "8",
        "cpus-per-task": "32", "partition": "gpu", "time": "02:00:00", "account": "proj1",
        "output": "my_training-%j.out",
    }  # fmt: skip
    # run it with stand-ins for SLURM's scontrol and srun: what would each node run?
    bin_dir = fake_commands(tmp_path / "bin", {
        "scontrol": 'printf "node7\\nnode8\\n"\n',
        "srun": f'printf "%s\\n" "$@" > {tmp_path}/srun.args\n',
    })  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_NNODES": "4",
           "SLURM_JOB_ID": "1234", "SLURM_JOB_NODELIST": "node[7-10]"}  # fmt: skip
    assert subprocess.run(["bash", str(target)], env=env).returncode == 0
    srun = (tmp_path / "srun.args").read_text().splitlines()
    assert srun == [
        "--kill-on-bad-exit=1", sys.executable, "-m", "torch.distributed.run", "--nnodes=4",
        "--nproc-per-node=8", "--rdzv-id=1234", "--rdzv-backend=c10d",
        "--rdzv-endpoint=node7:29500", str(script.resolve()), "--epochs", "3", "--name", "a b",
    ]  # fmt: skip


def test_slurm_cpu_nodes_and_bad_values():
    text = slurm_script("train.py", nnodes=2, nproc_per_node=4, gpus_per_node=0,
                        job_name="cpu-run")  # fmt: skip
    assert "gpus-per-node" not in sbatch_directives(text)
    with pytest.raises(OptionError, match=r"`partition` must be a non-empty word.*'gpu a100'"):
        slurm_script("train.py", partition="gpu a100")
    with pytest.raises(OptionError, match=r"`gpus_per_node` must be an int >= 0"):
        slurm_script("train.py", gpus_per_node=-1)


def test_submit_runs_sbatch_or_says_it_is_missing(tmp_path, capfd, monkeypatch):
    script = tmp_path / "t.py"
    script.write_text("")
    bin_dir = fake_commands(tmp_path / "bin", {
        "sbatch": f'echo "$@" > {tmp_path}/sbatch.args; echo "Submitted batch job 42"\n',
    })  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert main(["train", "--slurm", "--submit", str(script)]) == 0
    assert (tmp_path / "sbatch.args").read_text().strip() == "t.sbatch"
    assert "Submitted batch job 42" in capfd.readouterr().out
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    (bin_dir / "sbatch").unlink()
    assert main(["train", "--slurm", "--submit", str(script)]) == 2
    err = capfd.readouterr().err
    assert "`sbatch` command is not on this machine's PATH" in err and "sbatch t.sbatch" in err
    assert (tmp_path / "t.sbatch").is_file()  # written all the same


def test_single_process_validation_is_not_dealt():
    from deeptoolbox import Network
    from deeptoolbox import layers as L

    x = torch.randn(40, 2)
    y = (x[:, 0] > 0).long()
    net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])
    result = train(net, (x, y), "crossentropy", TrainingOptions(
        max_epochs=1, mini_batch_size=16, verbose=False, validation_data=(x, y),
        metrics=["accuracy"], output_network="last-iteration"))  # fmt: skip
    with torch.no_grad():
        expected = (net(x).argmax(1) == y).float().mean().item()
    assert result.final_validation["accuracy"] == pytest.approx(expected)
