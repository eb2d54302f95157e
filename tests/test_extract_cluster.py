"""Cluster set-up from pipelines.yaml: SLURM via dask-jobqueue (no SLURM here: the object and its job script)."""
from __future__ import annotations

import re

from commands.pipeline import load_cluster
from common.runner import make_slurm_cluster


def test_slurm_cluster_gets_the_configured_options_and_a_pinned_job_script() -> None:
    settings = load_cluster(overrides={"kind": "slurm", "slurm": {
        "queue": "cpu", "account": "vision", "cores": 4, "memory": "16GB", "walltime": "02:00:00"}})
    assert settings.kind == "slurm"
    cluster = make_slurm_cluster(settings)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    sbatch = dict(re.findall(r"^#SBATCH (-\w|--[\w-]+)[ =](.*)$", script, flags=re.M))
    assert sbatch["-p"] == "cpu" and sbatch["-A"] == "vision" and sbatch["-t"] == "02:00:00"
    assert sbatch["--cpus-per-task"] == "4" and sbatch["--mem"] == "15G"  # 16 GB as GiB, rounded down
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert f"export {var}=1" in script
    worker = script.strip().splitlines()[-1]
    assert "distributed.cli.dask_worker" in worker
    assert "--nthreads 1" in worker and "--nworkers 4" in worker  # 4 single-threaded worker processes per job
    assert script.index("export OMP_NUM_THREADS") < script.index("dask_worker")


def test_default_cluster_section_is_a_local_two_worker_cluster() -> None:
    settings = load_cluster()
    assert (settings.kind, settings.workers) == ("local", 2)
    assert settings.slurm["cores"] == 1 and "processes" not in settings.slurm  # processes follow cores
