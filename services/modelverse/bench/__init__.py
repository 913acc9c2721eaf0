"""What the benchmark scripts in ``tools/`` share: query sampling, the agreement metric, the
synthetic statistics at scale (CPU and GPU). The scripts stay thin command lines; the parts here
are tested (tests/test_bench.py, tests/test_scale_gpu.py; tiny_pipelines by the generator tests).
Nothing in the services imports this."""
