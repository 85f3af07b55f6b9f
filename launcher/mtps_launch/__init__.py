"""mtps_launch: the launcher of mtps jobs (launcher/mtps-launch is its entry point).

Modules, from the bottom up:
  util      logging, exit codes, small file helpers;
  hosts     hostfiles, the Slurm environment, and where each node goes;
  records   replays a remote scheduler's result stream into the run dir;
  backends  where and how node processes run: local children, or through a
            remote-exec command (ssh, ip netns exec, srun);
  progress  the progress line (with epoch and ETA);
  report    RUN_DIR/report.html, the training report page;
  job       one job: start, watch, restart from checkpoints, stop, report;
  predict   the predict and export commands (they run mtps-predict);
  cli       the command line.

Python 3 standard library only, except torch_export: the PyTorch loader of
an export (numpy and torch), which no command imports; users import it.
"""
