"""Faces and dlib's 68 landmarks, offline: dlib's HOG detector (in the ``dlib-bin`` wheel) and its
68-point shape predictor and ResNet face-recognition model (in the ``face-recognition-models`` wheel).

Optional extra ``ganprior[faces]``; nothing here is imported unless ``--faces`` or the identity
metric is used.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch

SHAPE_MODEL = "shape_predictor_68_face_landmarks.dat"
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "pip install 'ganprior[faces]' (dlib-bin and face-recognition-models wheels)"


class FacesUnavailable(RuntimeError):
    """dlib or its model files are missing."""


def _dlib():
    try:
        import dlib
    except ImportError:
        raise FacesUnavailable(f"face detection needs dlib: {INSTALL_HINT}") from None
    return dlib


def model_file(name: str) -> Path:
    """A model file of the ``face-recognition-models`` wheel, found without importing the package (its
    ``__init__`` needs ``pkg_resources``, which recent setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FacesUnavailable(f"dlib's model file {name} comes with face-recognition-models: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise FacesUnavailable(f"{path} is missing; reinstall face-recognition-models")
    return path


@functools.lru_cache(maxsize=1)
def _models():
    dlib = _dlib()
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model_file(SHAPE_MODEL)))


@functools.lru_cache(maxsize=1)
def recognition_model():
    return _dlib().face_recognition_model_v1(str(model_file(RECOGNITION_MODEL)))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[1, C, H, W]`` in ``[-1, 1]`` -> ``H×W×3`` uint8 (grey replicated), what dlib reads."""
    x = image[0].detach().float().cpu().clamp(-1, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return np.ascontiguousarray(((x + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())


#: HOG detection score below which a find is dropped. On the astronaut photo the face scores 1.16 and
#: the round mission patch on her suit 0.12 (at upsample 1); dlib's own default keeps everything > 0.
MIN_SCORE = 0.5


def find_faces(image: torch.Tensor, upsample: int = 1,
               min_score: float = MIN_SCORE) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """``[(box (left, top, right, bottom), landmarks [68, 2] (x, y))]``, largest face first.

    ``upsample`` doubles the image that many times before detection (dlib's HOG finds faces of about
    80 px and larger at 0, 40 px at 1)."""
    detector, predictor = _models()
    pixels = to_uint8(image)
    faces = []
    rects, scores, _ = detector.run(pixels, upsample, 0.0)
    for rect, score in zip(rects, scores):
        if score < min_score:
            continue
        shape = predictor(pixels, rect)
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
        faces.append(((rect.left(), rect.top(), rect.right(), rect.bottom()), points))
    return sorted(faces, key=lambda f: -(f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))


def face_descriptor(image: torch.Tensor, box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
    """dlib's ResNet face embedding (128-d) of the largest face, or of the face in ``box``; ``None``
    when there is no face."""
    dlib = _dlib()
    detector, predictor = _models()
    pixels = to_uint8(image)
    if box is None:
        rects = sorted(detector(pixels, 1), key=lambda r: -r.area())
        if not rects:
            return None
        rect = rects[0]
    else:
        rect = dlib.rectangle(*[int(v) for v in box])
    shape = predictor(pixels, rect)
    return np.array(recognition_model().compute_face_descriptor(pixels, shape), dtype=np.float64)
