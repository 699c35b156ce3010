"""Layer 1: the frameworks' side of a workload in Python: TF's conv and model paths, TF's step
stats, oneDNN's execution profile, and the numerical comparison of two outputs."""
