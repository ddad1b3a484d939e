"""Datasets, annotation readers and the SynthDFER generator."""
