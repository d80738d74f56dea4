"""The fuzz suite: deterministic mutants of every file and value edgedepth reads, run in capped subprocesses."""
