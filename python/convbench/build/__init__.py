"""Layer 1: TVM. The host target, the compute definitions, the schedules, the Relax build of a
model cut, the kernel cache and the tuning databases a build reads."""
