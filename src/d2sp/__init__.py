"""d2sp: train video facial-expression classifiers while purifying their training data.

The method (D2SP, framework SCIU) adds a weight branch on the clip embedding, prunes
low-quality clips (Coarse-Grained Pruning) and corrects wrong labels (Fine-Grained
Correction), recomputed every epoch.
"""

__version__ = "0.1.0"
