"""Layer 2: measuring. Typed tasks (what crosses the process boundary), the worker pool (the
parent's side), process set-up (pinning, the record), and the handlers a worker runs."""
