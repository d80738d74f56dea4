"""Speed and memory benchmarks. Installed as ``edgedepth_benchmarks``."""
