"""Speed benchmarks: training throughput from memory, the purifier's epoch step, loader
rates per source and codec, training from disk, and the GPU suite that runs them."""
