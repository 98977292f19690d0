"""Class choice for class-conditional models: the ``--class`` grammar and ImageNet class inference
with DeiT (optional extra ``ganprior[classify]``; timm is imported only when DeiT is used)."""

from .choice import ClassCandidates, ClassOptionError, ClassRequest, parse_class_option
from .deit import ClassifierUnavailable, build_deit, class_probabilities, predict_classes, preprocess

__all__ = ["ClassCandidates", "ClassOptionError", "ClassRequest", "ClassifierUnavailable", "build_deit",
           "class_probabilities", "parse_class_option", "predict_classes", "preprocess"]
