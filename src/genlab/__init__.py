"""genlab: train, sample and evaluate classic deep generative models of images."""

__version__ = "0.1.0"

__all__ = ["Run", "__version__", "export", "load"]


def __getattr__(name: str):
    # `import genlab` stays cheap: torch and friends load on first use of the API
    if name in ("load", "export"):
        from genlab import api

        return getattr(api, name)
    if name == "Run":
        from genlab.runs import Run

        return Run
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")
