"""`mtps-launch slurm` run as every task of an srun step (srun -n 1+S+W).

Each task becomes one node, chosen by SLURM_PROCID (hosts.task_role): task 0
the scheduler, listening on --scheduler-port at its node's NodeAddr; tasks
1..S the servers; the rest the workers, which reach the scheduler at the
first node of the step. Slurm starts, signals and stops the processes, so
there is no supervision here: a node that dies fails the step
(srun --kill-on-bad-exit ends the others); run the job again with --resume
to continue from its checkpoints. Task 0 runs the scheduler as its child and
prints the held-out metrics at the end, like the other backends; the other
tasks replace themselves with mtps-node (their logs are srun's output,
--label tells them apart). RUN_DIR must be on a filesystem task 0's node
can write; checkpoints must be on one every node shares (checkpoint.dir).
"""

import os
import subprocess
from pathlib import Path

from .hosts import SlurmError, expand_hostnames, node_addresses, task_role, worker_threads_flag
from .job import print_summary, read_summary
from .util import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, log

DEFAULT_SCHEDULER_PORT = 7100


def run_task(args, task, env, run=subprocess.run):
    """Runs this task's node; returns the exit code (or does not return:
    servers and workers exec mtps-node)."""
    try:
        role, rank = task_role(task.procid, args.servers, args.workers)
        if task.ntasks != 1 + args.servers + args.workers:
            raise SlurmError("the step has %d tasks; a job of %d servers and %d workers needs "
                             "1 + %d + %d = %d (srun -n %d)" % (
                                 task.ntasks, args.servers, args.workers, args.servers,
                                 args.workers, 1 + args.servers + args.workers,
                                 1 + args.servers + args.workers))
        if args.secure:
            raise SlurmError("--secure needs the launcher to hand each node its key: run "
                             "mtps-launch slurm once inside the allocation instead of under srun")
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
        if not nodelist:
            raise SlurmError("SLURM_STEP_NODELIST is not set")
        nodes = expand_hostnames(nodelist, run=run)
        first = nodes[0]
        me = env.get("SLURMD_NODENAME")
        if not me:
            raise SlurmError("SLURMD_NODENAME is not set")
        addresses = node_addresses(sorted({first, me}), run=run)
        threads_flag = worker_threads_flag(env, nodes, me) if role == "worker" else None
    except SlurmError as e:
        log("error: %s" % e)
        return EXIT_USAGE
    run_dir = Path(args.run_dir).resolve()
    job_id = "slurm%s.%s" % (env.get("SLURM_JOB_ID", "0"),
                             env.get("SLURM_STEP_ID", env.get("SLURM_STEPID", "0")))
    argv = [args.remote_binary or args.binary, "--role=%s" % role,
            "--bind=%s" % addresses[me], "--advertise=%s" % addresses[me],
            "--job_id=%s" % job_id, "--exit_with_parent"]
    port = args.scheduler_port
    if role != "scheduler":
        argv += ["--scheduler=tcp://%s:%d" % (addresses[first], port), "--rank=%d" % rank,
                 "--run_dir=%s" % (run_dir / "hosts" / me)]
        if threads_flag:
            argv.append(threads_flag)
        os.makedirs(run_dir / "hosts" / me, exist_ok=True)
        os.execv(argv[0], argv)
    argv += ["--config=%s" % Path(args.config).resolve(), "--num_servers=%d" % args.servers,
             "--num_workers=%d" % args.workers, "--run_dir=%s" % run_dir, "--port=%d" % port]
    if args.set:
        argv.append("--set=" + ";".join(args.set))
    if args.resume:
        argv.append("--resume")
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    for stale in ("summary.json", "scheduler.addr", "cluster.json"):
        (run_dir / stale).unlink(missing_ok=True)
    log("task %d of %d: the scheduler on %s (%s:%d); %d servers and %d workers in tasks 1-%d" %
        (task.procid, task.ntasks, me, addresses[me], port, args.servers, args.workers,
         task.ntasks - 1))
    try:
        code = subprocess.call(argv, stdin=subprocess.DEVNULL, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        log("--timeout of %g s expired; the scheduler was killed" % args.timeout)
        return EXIT_TIMEOUT
    if code != 0:
        log("FAILED: the scheduler exited with code %d" % code)
        return EXIT_FAILED
    summary = read_summary(run_dir / "summary.json")
    if summary is None:
        return EXIT_FAILED
    print_summary(summary)
    print("run dir: %s" % run_dir)
    return EXIT_OK
