"""draw_tf benchmarks: bench/run_benchmarks.py."""
