"""Identity similarity of face restorations (CRI reports one in Table 4): the cosine similarity of
**dlib's ResNet face embedding** (``dlib_face_recognition_resnet_model_v1``, 128-d, from the
``face-recognition-models`` wheel) between a restoration and the clean image. It is *not* ArcFace:
dlib's network is a ResNet-29 trained with a metric loss; its authors compare embeddings by Euclidean
distance (same person below 0.6), so the cosine values here are not comparable to ArcFace numbers.

The face is found (dlib HOG, 68 landmarks) on the clean image; the restoration is embedded in the same
box, so a failed restoration still gets a (low) score instead of silently dropping out.

dlib's embeddings are not centred: on skimage's astronaut an unrelated image (the camera-man photo in
her face box) still scores a cosine of 0.89 against her (distance 0.67; 0 for herself), a ×8 blur
0.91 (0.63), added noise (σ 0.15 of the range) 0.97 (0.34). Read ``id_sim`` as a ranking between methods on the
same images, with ``id_dist`` beside it.
"""

from __future__ import annotations

import numpy as np
import torch

from ganprior.metrics.images import MetricInputError, MetricUnavailable

NAME = "id_sim (dlib ResNet face embedding, cosine)"


def identity_similarity(restored: torch.Tensor, clean: torch.Tensor) -> float:
    """Cosine similarity in ``[-1, 1]`` of the two ``[1, C, H, W]`` (``[-1, 1]``) images' dlib embeddings."""
    return identity_scores(restored, clean)["id_sim"]


def identity_scores(restored: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """``id_sim`` (cosine) and ``id_dist`` (Euclidean distance, dlib's own measure: < 0.6 = same person)."""
    try:
        from ganprior.faces.detect import FacesUnavailable, face_descriptor, find_faces
    except ImportError as err:  # pragma: no cover - the faces package is part of ganprior
        raise MetricUnavailable("id_sim", str(err)) from err
    if restored.shape[-2:] != clean.shape[-2:]:
        raise MetricInputError(f"id_sim: image {tuple(restored.shape[-2:])} and reference "
                               f"{tuple(clean.shape[-2:])} differ in size")
    try:
        faces = find_faces(clean)
        if not faces:
            raise MetricInputError("id_sim: no face found in the reference (dlib HOG detector)")
        box = faces[0][0]
        a, b = face_descriptor(restored, box), face_descriptor(clean, box)
    except FacesUnavailable as err:
        raise MetricUnavailable("id_sim", str(err)) from err
    return {"id_sim": float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))),
            "id_dist": float(np.linalg.norm(a - b))}
