"""scikit-learn estimators on xpnet models: `MLPClassifier` and `MLPRegressor` (scikit-learn's parameter and
attribute names where they mean the same), and `NeuralNetClassifier` / `NeuralNetRegressor` for any xpnet model
(CNNs included). They pass scikit-learn's `check_estimator` and support array-API inputs: with
`sklearn.set_config(array_api_dispatch=True)` an input of PyTorch, CuPy or array-api-strict trains on its own
library and device, and the predictions come back there (docs/sklearn.md).

Needs scikit-learn 1.6 or later (the `sklearn` extra: pip install "xpnet[sklearn]"); `import xpnet` does not.
"""
try:
    from sklearn.utils.validation import validate_data  # noqa: F401  (scikit-learn 1.6 or later)
except ImportError as exc:
    raise ImportError(f"xpnet.sklearn needs scikit-learn 1.6 or later ({exc}); install it with: "
                      f'pip install "xpnet[sklearn]"') from None

from .estimators import MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor"]
