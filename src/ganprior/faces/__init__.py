"""Faces in real photos for face models (FFHQ): detection and dlib's 68 landmarks (optional extra
``ganprior[faces]``), FFHQ alignment and its inverse, and ``restore --faces``."""

from .align import FaceQuad, align, feather, ffhq_quad, paste, unalign
from .pipeline import FacesResult, NoFaceError, restore_faces

__all__ = ["FaceQuad", "FacesResult", "NoFaceError", "align", "feather", "ffhq_quad", "paste", "restore_faces",
           "unalign"]
