"""Test-only entry point: the ``d2sp`` command line with float64 as the default dtype and one
thread, so that a run on several processes and one on a single process, which add the same
numbers in different orders, stay equal far below every decision threshold."""

import runpy

import torch

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
runpy.run_module("d2sp", run_name="__main__", alter_sys=True)
