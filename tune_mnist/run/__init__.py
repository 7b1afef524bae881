"""Running a space on Ray Tune: the sweep's driver, trainables, placement on the cluster,
budgets, progress, tracking, trial logs, Ray Jobs."""
