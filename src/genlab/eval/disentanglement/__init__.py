"""Disentanglement metrics on dSprites' ground-truth factors (no TensorFlow): BetaVAE score,
FactorVAE score, MIG, SAP, DCI (disentanglement, completeness, informativeness), modularity and
explicitness, each in its own module with disentanglement_lib's definitions, under named protocols
(`protocol.py`), over several evaluation seeds. `genlab disentangle RUN` calls `evaluate_run`.
What dSprites' orientation symmetry does to each metric's ceiling: see `ground_truth`."""

from genlab.eval.disentanglement.evaluate import evaluate_representation, evaluate_run
from genlab.eval.disentanglement.ground_truth import CodeCache, DSpritesFactors, GroundTruth, SyntheticFactors
from genlab.eval.disentanglement.protocol import PROTOCOLS, Protocol, get_protocol

__all__ = ["evaluate_representation", "evaluate_run", "CodeCache", "DSpritesFactors", "GroundTruth",
           "SyntheticFactors", "PROTOCOLS", "Protocol", "get_protocol"]
