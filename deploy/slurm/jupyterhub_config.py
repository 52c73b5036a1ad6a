"""JupyterHub on Slurm: each user's server is a Slurm job (batchspawner's SlurmSpawner) running an eo-vre image
rootless with Charliecloud's ch-run; Dask workers it starts with dask-jobqueue are Slurm jobs running the same image.

Site settings, from the environment (defaults: the one-machine Slurm of deploy/slurm/slurm.conf):
  VRE_HPC_IMAGE        the exported image, readable by every user: `vre export IMAGE --to squashfs` (or a directory,
                       --to charliecloud) of an image with the site's Slurm client (deploy/slurm/Containerfile)
  VRE_HUB_IP           where users reach the hub's proxy (127.0.0.1), VRE_HUB_PORT (8000)
  VRE_HUB_API_IP       where jobs reach the hub's API: an address compute nodes can reach (127.0.0.1), VRE_HUB_API_PORT
  VRE_SLURM_PARTITION  the partition of notebook servers and workers (the default partition)
The hub runs as root (it submits each user's job as that user) and authenticates users with PAM, the default.
"""

import os
import pwd
import shlex
from pathlib import Path

c = get_config()  # noqa: F821 (provided by JupyterHub's config loader)
image = os.environ["VRE_HPC_IMAGE"]

c.JupyterHub.ip = os.environ.get("VRE_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("VRE_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = os.environ.get("VRE_HUB_API_IP", "127.0.0.1")
c.JupyterHub.hub_port = int(os.environ.get("VRE_HUB_API_PORT", "8081"))

# The image read-only, the user's own HOME bound in and the working directory (ch-run starts in / otherwise), and
# what a job needs to submit jobs (Slurm's configuration and munge's socket): dask-jobqueue's workers are submitted
# from inside the user's server. $HOME is expanded by the job's shell.
CH_RUN = f'ch-run --home --cd="$HOME" --set-env --bind=/etc/slurm --bind=/run/munge {shlex.quote(image)} -- start'

c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
# Without sudo: the hub (root) submits as the user with util-linux's runuser, which keeps the job's environment.
# Sites that run the hub unprivileged use "sudo -E -u {username}" and a sudoers rule for sbatch/squeue/scancel.
c.SlurmSpawner.exec_prefix = "runuser -u {username} --"
c.SlurmSpawner.req_srun = ""  # ch-run is the job's command: no job step needed for one process
c.SlurmSpawner.req_partition = os.environ.get("VRE_SLURM_PARTITION", "")
c.SlurmSpawner.req_nprocs = "1"
c.SlurmSpawner.req_runtime = "08:00:00"
# batchspawner-singleuser (from the site layer) reports the port it picked to the hub, then runs the server.
c.SlurmSpawner.batchspawner_singleuser_cmd = f"{CH_RUN} batchspawner-singleuser"
c.SlurmSpawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
# A job may wait in the queue: the hub waits with it (and cancels the job when it gives up).
c.Spawner.start_timeout = 600
c.Spawner.http_timeout = 300
# dask-jobqueue's defaults in the user's server: SLURMCluster() starts workers as one-CPU Slurm jobs that run the
# same image (python inside ch-run), with their scratch in /tmp.
c.Spawner.environment = {
    "DASK_JOBQUEUE__SLURM__PYTHON": f"{CH_RUN} python",
    "DASK_JOBQUEUE__SLURM__CORES": "1",
    "DASK_JOBQUEUE__SLURM__PROCESSES": "1",
    "DASK_JOBQUEUE__SLURM__MEMORY": "2GiB",
    "DASK_JOBQUEUE__SLURM__WALLTIME": "01:00:00",
    "DASK_JOBQUEUE__SLURM__LOCAL_DIRECTORY": "/tmp",
    # The workers' job logs: in the user's home (a job's default, its working directory, is / in the image).
    "DASK_JOBQUEUE__SLURM__LOG_DIRECTORY": lambda spawner: str(Path(pwd.getpwnam(spawner.user.name).pw_dir,
                                                                    ".dask-jobqueue")),
}
if os.environ.get("VRE_SLURM_PARTITION"):
    c.Spawner.environment["DASK_JOBQUEUE__SLURM__QUEUE"] = os.environ["VRE_SLURM_PARTITION"]
