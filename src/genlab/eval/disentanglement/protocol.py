"""Every setting of the disentanglement metrics, in one place: named protocols.

`dlib` is disentanglement_lib's protocol (the gin files of its `unsupervised_study_v1`, the ones
behind Locatello et al. 2019): point counts, 20 equal-width histogram bins for the mutual
information, logistic regression (BetaVAE score, explicitness), gradient-boosted trees with
scikit-learn's defaults (DCI), a linear SVC with C = 0.01 and balanced class weights (SAP,
discrete factors) and the FactorVAE score's pruning of latents whose standard deviation is below
0.05. `cpu` keeps every definition and cuts the cost: fewer points and fewer boosted trees
(minutes instead of hours on a laptop CPU). `test` is tiny, for the unit tests.

A result records its protocol whole (`Protocol.describe`), so a number never travels without the
points, bins and classifiers that made it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from genlab.defaults import DISENTANGLE, DISENTANGLE_PROTOCOLS
from genlab.errors import GenlabError


@dataclass(frozen=True)
class BetaVAESettings:
    batch_size: int = 64      # pairs averaged into one |z1 - z2| feature vector
    num_train: int = 10000    # feature vectors to fit the classifier
    num_eval: int = 5000      # feature vectors to score it
    classifier: str = "LogisticRegression(max_iter=1000)"


@dataclass(frozen=True)
class FactorVAESettings:
    batch_size: int = 64
    num_train: int = 10000    # votes to build the majority-vote classifier
    num_eval: int = 5000      # votes to score it
    num_variance_estimate: int = 10000  # points for each latent's global variance
    prune_std: float = 0.05   # latents with a standard deviation below this are left out (dlib's prune_dims)
    classifier: str = "majority vote: latent of least normalised variance -> factor"


@dataclass(frozen=True)
class MIGSettings:
    num_train: int = 10000
    bins: int = 20            # equal-width bins per latent (np.histogram's edges)


@dataclass(frozen=True)
class SAPSettings:
    num_train: int = 10000
    num_test: int = 5000
    continuous_factors: bool = False  # dSprites' factors are classes: score = accuracy of a 1-d classifier
    svc_c: float = 0.01
    classifier: str = "LinearSVC(C=0.01, class_weight='balanced') on one latent"


@dataclass(frozen=True)
class DCISettings:
    num_train: int = 10000
    num_test: int = 5000
    # sklearn.ensemble.GradientBoostingClassifier, its defaults but for n_estimators (dlib: the
    # defaults, 100); importances = its impurity-based feature_importances_, as dlib. Fewer trees keep
    # the definition and cut the cost (one tree per class per iteration: 40 x n for orientation).
    n_estimators: int = 100
    classifier: str = "GradientBoostingClassifier(n_estimators=100), impurity importances"


@dataclass(frozen=True)
class ModularitySettings:
    num_train: int = 10000
    num_test: int = 5000
    bins: int = 20
    classifier: str = "LogisticRegression(max_iter=1000) on standardised codes; ROC-AUC one-vs-rest"


@dataclass(frozen=True)
class Protocol:
    name: str
    betavae: BetaVAESettings = field(default_factory=BetaVAESettings)
    factorvae: FactorVAESettings = field(default_factory=FactorVAESettings)
    mig: MIGSettings = field(default_factory=MIGSettings)
    sap: SAPSettings = field(default_factory=SAPSettings)
    dci: DCISettings = field(default_factory=DCISettings)
    modularity: ModularitySettings = field(default_factory=ModularitySettings)
    seeds: int = 3            # evaluation seeds (each draws every metric's points afresh)

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def draws_per_seed(self) -> int:
        """Factor draws (codes looked up) of one seed over every metric: the progress bar's unit.
        Each factor combination is encoded once, so at most 737,280 dSprites images are encoded."""
        b, f = self.betavae, self.factorvae
        return (self.mig.num_train + 2 * b.batch_size * (b.num_train + b.num_eval)
                + f.num_variance_estimate + f.batch_size * (f.num_train + f.num_eval)
                + sum(m.num_train + m.num_test for m in (self.sap, self.dci, self.modularity)))


DLIB = Protocol("dlib")

CPU = Protocol(
    "cpu",
    betavae=BetaVAESettings(num_train=1000, num_eval=500),
    factorvae=FactorVAESettings(num_train=1000, num_eval=500, num_variance_estimate=5000),
    mig=MIGSettings(num_train=10000),
    sap=SAPSettings(num_train=5000, num_test=2000),
    dci=DCISettings(num_train=5000, num_test=2000, n_estimators=20,
                    classifier="GradientBoostingClassifier(n_estimators=20), impurity importances"),
    modularity=ModularitySettings(num_train=5000, num_test=2000),
)

TEST = Protocol(
    "test",
    betavae=BetaVAESettings(batch_size=16, num_train=300, num_eval=200),
    factorvae=FactorVAESettings(batch_size=32, num_train=300, num_eval=200, num_variance_estimate=1000),
    mig=MIGSettings(num_train=3000),
    sap=SAPSettings(num_train=1000, num_test=500),
    dci=DCISettings(num_train=1000, num_test=500, n_estimators=10,
                    classifier="GradientBoostingClassifier(n_estimators=10), impurity importances"),
    modularity=ModularitySettings(num_train=1000, num_test=500),
)

PROTOCOLS = {p.name: p for p in (DLIB, CPU, TEST)}
CLI_PROTOCOLS = DISENTANGLE_PROTOCOLS  # what `genlab disentangle --protocol` offers
DEFAULT_PROTOCOL: str = DISENTANGLE["protocol"]
DEFAULT_SEEDS: int = DISENTANGLE["seeds"]


def get_protocol(protocol: str | Protocol, seeds: int | None = None) -> Protocol:
    """A protocol by name (or as given), with `seeds` evaluation seeds when given."""
    if isinstance(protocol, Protocol):
        p = protocol
    elif protocol in PROTOCOLS:
        p = PROTOCOLS[protocol]
    else:
        raise GenlabError(f"--protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if seeds is not None:
        if seeds < 1:
            raise GenlabError(f"--seeds {seeds}: needs at least 1 evaluation seed (3 for a spread)")
        p = replace(p, seeds=seeds)
    return p
