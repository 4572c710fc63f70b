"""Auto-labeling in the Labeler for the three kinds of network: a classifier proposes a class
per unlabelled image (:meth:`LabelSession.propose`), an object detector proposes boxes (those
scoring at least ``threshold``) for the images without boxes, a segmentation network proposes
a label map for the images without one. Each proposal carries a confidence (classifier: the
top class probability; detector: the lowest score of its boxes; segmentation: the mean over
pixels of the top class probability) and the list is sorted least confident first, so the
user labels the most informative images first (uncertainty sampling).

A proposal is a draft: the page may edit it (another class, moved or resized boxes, a
repainted mask) and accept the edited version. Accepting saves it as a hand-made label would
be saved (labels, ``boxes.json``, ``pixel-labels/*.png`` + ``classes.json``), undoably; undo
puts the proposal back on the list.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from pydantic import BaseModel

from deeptoolbox.errors import DataError, OptionError

DEFAULT_THRESHOLD = 0.5
KINDS = ("classifier", "detector", "segmentation")


TASKS = {"classify": "classifier", "detect": "detector", "segment": "segmentation"}


def network_kind(net: Any, task: str | None = None) -> str:
    """Which proposals ``net`` gives: "detector" (an :class:`~deeptoolbox.vision.ObjectDetector`,
    or a module returning one dict of boxes per image), "segmentation" (class scores for
    every pixel, (K, H, W) per image) or "classifier" (a Network giving (K,) class scores).
    ``task`` ("classify", "detect" or "segment") says it when the network cannot tell, and
    must agree with it when it can.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.vision import ObjectDetector, unet
        >>> network_kind(Network([L.ImageInput((1, 4, 4)), L.Flatten(), L.Dense(2)]))
        'classifier'
        >>> network_kind(unet((1, 8, 8), 2, depth=1, filters=4))
        'segmentation'
        >>> network_kind(ObjectDetector(["a"], input_size=32), task="detect")
        'detector'
    """
    if task is not None and task not in TASKS:
        raise OptionError(f"Labeler: `task` must be one of {list(TASKS)} (or None: from the "
                          f"network). Received: task={task!r}.")  # fmt: skip
    found, what = _inferred_kind(net)
    expected = TASKS.get(task) if task is not None else None
    if found is None:
        if expected is None:
            raise OptionError(
                f"Labeler: cannot tell which labels the network proposes: {what}. Say it with "
                "task='classify' (a (K,) class score per image), 'detect' or 'segment' ((K, H, "
                "W) scores per pixel); on the command line --task classify|detect|segment."
            )
        return expected
    if expected is not None and expected != found:
        raise OptionError(f"Labeler: task={task!r} asks for {expected} proposals, but the "
                          f"network is a {found} ({what}).")  # fmt: skip
    return found


def _inferred_kind(net: Any) -> tuple[str | None, str]:
    """(kind or None, what the network showed: said in messages)."""
    import torch

    from deeptoolbox.network import Network
    from deeptoolbox.vision import ObjectDetector

    if isinstance(net, ObjectDetector):
        return "detector", "an ObjectDetector"
    if isinstance(net, Network):
        shape = net.output_shape()
        if shape is not None and len(shape) == 3:
            return "segmentation", f"output {tuple(shape)} per image"
        if shape is not None and len(shape) == 1:
            return "classifier", f"output {tuple(shape)} per image"
        return None, f"its output is {None if shape is None else tuple(shape)} per image"
    if isinstance(net, torch.nn.Module) and getattr(net, "classes", None):
        channels = _input_size(net)[0]
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                out = net(torch.full((1, channels, 32, 32), 0.5))
        finally:
            net.train(was_training)
        if isinstance(out, list | tuple) and out and isinstance(out[0], dict):
            return "detector", "a module giving a dict of boxes per image"
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            return "segmentation", f"a module giving {tuple(out.shape)} for one 32 x 32 image"
        if isinstance(out, torch.Tensor) and out.dim() == 2:
            return "classifier", f"a module giving {tuple(out.shape)} for one image"
        return None, f"a {type(net).__name__} giving {type(out).__name__} for one image"
    raise OptionError(
        "Labeler: the auto-labeling network must be a classifier Network (an image input and "
        "`classes`), an ObjectDetector, or a segmentation network ((N, K, H, W) class scores "
        f"and `classes`). Received: {type(net).__name__}. Wrap other torch modules with "
        "deeptoolbox.interop.from_torch, or give them a `classes` list."
    )


def _input_size(net: Any) -> tuple[int, int | None, int | None]:
    """(C, H, W) the network reads (H, W None: any size)."""
    from deeptoolbox.network import Network

    if isinstance(net, Network):
        shape = net.output_shape(net.input_names[0])
        if shape is None or len(shape) != 3:
            raise OptionError(f"Labeler: auto-labeling needs a network with an image input "
                              f"(C, H, W). Its input is {shape}.")  # fmt: skip
        return int(shape[0]), int(shape[1]), int(shape[2])
    size = getattr(net, "input_size", None)
    if isinstance(size, tuple | list) and len(size) == 3:
        return int(size[0]), None, None  # a detector resizes its images itself
    return 3, None, None


def _read_image(path: Any, channels: int) -> Any:
    """An image file as a float (C, H, W) tensor in [0, 1]."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except OSError as err:
        raise DataError(f"Labeler: cannot read the image '{path}': {err}.") from err
    tensor = torch.from_numpy(pixels.copy()).float() / 255.0
    return tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)


def _classes(net: Any, session: Any) -> list[str]:
    classes = [str(c) for c in (getattr(net, "classes", None) or [])]
    if not classes:
        raise OptionError("Labeler: the auto-labeling network has no `classes` (give it the "
                          "class names it was trained with).")  # fmt: skip
    session.classes += [c for c in classes if c != "background" and c not in session.classes]
    return classes


def propose_boxes(session: Any, detector: Any, *, threshold: float = DEFAULT_THRESHOLD,
                  batch_size: int = 16) -> list[dict[str, Any]]:  # fmt: skip
    """Run ``detector`` over the images of ``session`` that have no boxes yet: one proposal
    per image with at least one box scoring ``threshold`` or more, ``{file, kind: "boxes",
    boxes: [{x, y, width, height, label, score}], confidence, source}``, confidence the
    lowest box score, least confident first. Images with no box at the threshold get none;
    ``session.proposal_notes`` names them (file: "the network proposed no boxes ..."), and
    ``session.proposal_status`` says how many images got proposals, so that "nothing found"
    reads differently from "nothing ran".

    Example:
        >>> import tempfile; from pathlib import Path
        >>> from PIL import Image
        >>> from deeptoolbox.apps._labeler import LabelSession
        >>> from deeptoolbox.vision import ObjectDetector
        >>> folder = Path(tempfile.mkdtemp()); Image.new("RGB", (32, 32)).save(folder / "a.png")
        >>> session = LabelSession(folder)
        >>> found = propose_boxes(session, ObjectDetector(["car"], input_size=32), threshold=0.0)
        >>> session.classes, all(p["kind"] == "boxes" for p in found)
        (['car'], True)
        >>> _ = propose_boxes(session, ObjectDetector(["car"], input_size=32), threshold=1.0)
        >>> session.proposal_notes["a.png"]
        'the network proposed no boxes scoring 1.00 or more for this image'
    """
    from deeptoolbox.vision import detect

    threshold = _check_threshold(threshold)
    names = _classes(detector, session)
    files = [f for f in session.files if not session.boxes.get(f)]
    channels = _input_size(detector)[0]
    proposals, notes = [], {}
    for chunk, images in _batches(session, files, channels, batch_size):
        with _model_threshold(detector, threshold):  # the model's own cut, 0.05, lowered
            found = detect(detector, images, threshold, batch_size=batch_size)
        for file, image, result in zip(chunk, images, found, strict=True):
            boxes = _boxes(result, names, image.shape[2], image.shape[1])
            if boxes:
                proposals.append({"file": file, "kind": "boxes", "boxes": boxes, "source": "detector",
                                  "confidence": min(b["score"] for b in boxes)})  # fmt: skip
            else:
                notes[file] = (f"the network proposed no boxes scoring {threshold:.2f} or more "
                               "for this image")  # fmt: skip
    return _keep(session, proposals, files, "boxes", notes,
                 f" (none of the others had a box scoring {threshold:.2f} or more)")  # fmt: skip


def _batches(session: Any, files: list[str], channels: int, batch_size: int) -> Any:
    """(files, their images as (C, H, W) tensors), ``batch_size`` files at a time."""
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        yield chunk, [_read_image(session.path_of(f), channels) for f in chunk]


def _keep(session: Any, proposals: list[dict[str, Any]], files: list[str], what: str,
          notes: dict[str, str] | None = None, why: str = "") -> list[dict[str, Any]]:  # fmt: skip
    """The session's proposals become ``proposals``, least confident first; its
    ``proposal_status`` says for how many of ``files`` (those the network ran on) the network
    proposed ``what``, ``why`` the others got none, and ``proposal_notes`` the reason of
    each image left without a proposal (``notes``)."""
    session.proposals = sorted(proposals, key=lambda p: p["confidence"])
    session.proposal_notes = dict(notes or {})
    session.proposal_status = proposal_status(len(proposals), len(files), what, why)
    return session.proposals


def proposal_status(proposed: int, ran_on: int, what: str, why: str = "") -> str:
    """The line the page shows above its proposals: how many images the network proposed
    ``what`` for, out of the ``ran_on`` it ran on.

    Example:
        >>> proposal_status(0, 3, "boxes", " (none had a box scoring 0.50 or more)")
        'The network proposed boxes for 0 of 3 images (none had a box scoring 0.50 or more).'
        >>> proposal_status(0, 0, "a class")
        'The network proposed nothing: every image has a class already.'
    """
    if ran_on == 0:
        return f"The network proposed nothing: every image has {what} already."
    return (f"The network proposed {what} for {proposed} of {ran_on} images"
            f"{why if proposed < ran_on else ''}.")  # fmt: skip


def _model_threshold(detector: Any, threshold: float) -> Any:
    """Within the block, ``detector`` (an ObjectDetector) keeps its detections scoring
    ``threshold`` or more even when its model cuts higher (torchvision's 0.05)."""
    import contextlib

    lower = getattr(detector, "score_threshold", None)
    return lower(threshold) if callable(lower) else contextlib.nullcontext()


def _check_threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise OptionError(f"Labeler: `threshold` must be a score in [0, 1] (boxes scoring "
                          f"less are not proposed). Received: threshold={value!r}.")  # fmt: skip
    return float(value)


def _boxes(result: dict[str, Any], names: list[str], width: int, height: int) -> list[dict]:
    """Detections (pixel corners) as Labeler boxes (x, y, width, height), clipped to the
    image; boxes under a pixel wide after clipping are left out."""
    boxes = []
    for (x0, y0, x1, y1), score, index in zip(result["boxes"].tolist(), result["scores"].tolist(),
                                              result["labels"].tolist(), strict=True):  # fmt: skip
        x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
        y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            boxes.append({"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0,
                          "label": names[index] if index < len(names) else str(index),
                          "score": float(score)})  # fmt: skip
    return boxes


def propose_masks(session: Any, net: Any, *, batch_size: int = 8) -> list[dict[str, Any]]:
    """Run the segmentation network ``net`` over the images of ``session`` without a saved
    label map: one proposal each, ``{file, kind: "mask", confidence, classes, source}``,
    the mask the argmax of the class probabilities (scores are softmaxed unless they are
    probabilities already), the confidence the mean over pixels of the top probability,
    least confident first. The masks themselves (label-map ids of the session) are served
    by ``GET /api/labeler/proposals/mask``.

    Example:
        >>> import tempfile; from pathlib import Path
        >>> from PIL import Image
        >>> from deeptoolbox.apps._labeler import LabelSession
        >>> from deeptoolbox.vision import unet
        >>> folder = Path(tempfile.mkdtemp()); Image.new("L", (8, 8)).save(folder / "a.png")
        >>> session = LabelSession(folder)
        >>> net = unet((1, 8, 8), 2, depth=1, filters=4, classes=["background", "road"])
        >>> [(p["file"], p["kind"]) for p in propose_masks(session, net)], session.mask_classes
        ([('a.png', 'mask')], ['background', 'road'])
    """
    import torch

    names = _classes(net, session)
    ids = torch.tensor([session.mask_classes.index(n) if n in session.mask_classes else 0
                        for n in names], dtype=torch.uint8)  # fmt: skip
    channels, height, width = _input_size(net)
    files = [f for f in session.files if not session.mask_path(f).is_file()]
    proposals = []
    for chunk, images in _batches(session, files, channels, batch_size):
        sizes = [tuple(im.shape[1:]) for im in images]
        if height is not None:  # a fixed input size: resized to it, the map back after
            fitted = [im if s == (height, width) else _resize(im, (height, width))
                      for im, s in zip(images, sizes, strict=True)]  # fmt: skip
            probabilities = list(_probabilities(net, torch.stack(fitted), names))
        elif len(set(sizes)) == 1:
            probabilities = list(_probabilities(net, torch.stack(images), names))
        else:  # a fully convolutional net on images of several sizes: one at a time
            probabilities = [_probabilities(net, im[None], names)[0] for im in images]
        for file, size, p in zip(chunk, sizes, probabilities, strict=True):
            if tuple(p.shape[1:]) != size:
                p = _resize(p, size)
            top, index = p.max(dim=0)
            session.proposal_masks[file] = ids[index].numpy()
            proposals.append({"file": file, "kind": "mask", "confidence": float(top.mean()),
                              "classes": sorted({names[i] for i in index.unique().tolist()}),
                              "source": "segmentation"})  # fmt: skip
    return _keep(session, proposals, files, "a label map")


def _resize(tensor: Any, size: tuple[int, int]) -> Any:
    import torch.nn.functional as F

    return F.interpolate(tensor[None], size=size, mode="bilinear", align_corners=False)[0]


def _probabilities(net: Any, batch: Any, names: list[str]) -> Any:
    import torch

    from deeptoolbox.inference import predict

    scores = predict(net, batch, device="cpu")
    scores = scores[0] if isinstance(scores, tuple | list) else scores
    if not isinstance(scores, torch.Tensor) or scores.dim() != 4 or scores.shape[1] != len(names):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise DataError(f"Labeler: the segmentation network must give (N, K, H, W) scores with "
                        f"K = {len(names)} (its classes {names}). Received {shape}.")  # fmt: skip
    scores = scores.float()
    sums = scores.sum(dim=1)
    if scores.min() >= 0 and torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        return scores  # probabilities already (a softmax ends the network)
    return scores.softmax(dim=1)


def propose(session: Any, net: Any, *, threshold: float = DEFAULT_THRESHOLD,
            task: str | None = None) -> list[dict]:  # fmt: skip
    """Proposals of ``net`` for the images of ``session``, by the kind of network
    (:func:`network_kind`, or ``task``): classes, boxes (scoring ``threshold`` or more) or
    label maps, least confident first.

    Example:
        >>> import tempfile; from pathlib import Path
        >>> from PIL import Image
        >>> from deeptoolbox.apps._labeler import LabelSession
        >>> from deeptoolbox.vision import unet
        >>> folder = Path(tempfile.mkdtemp()); Image.new("L", (8, 8)).save(folder / "a.png")
        >>> net = unet((1, 8, 8), 3, depth=1, filters=4, classes=["background", "a", "b"])
        >>> [p["kind"] for p in propose(LabelSession(folder), net)]
        ['mask']
    """
    threshold = _check_threshold(threshold)
    kind = network_kind(net, task)
    if kind == "detector":
        return propose_boxes(session, net, threshold=threshold)
    if kind == "segmentation":
        return propose_masks(session, net)
    return session.propose(net)  # it sets proposal_status too


def open_network_file(path: str | os.PathLike) -> Any:
    """The network of a model file for auto-labeling: a detector saved by
    :func:`deeptoolbox.vision.save_detector`, or a network file (a saved toolbox network,
    ONNX, Keras) that :func:`deeptoolbox.interop.read_model` reads.

    Example:
        >>> import tempfile, os
        >>> from deeptoolbox.vision import ObjectDetector, save_detector
        >>> path = save_detector(ObjectDetector(["car"], input_size=32),
        ...                      os.path.join(tempfile.mkdtemp(), "cars.zip"))
        >>> type(open_network_file(path)).__name__
        'ObjectDetector'
    """
    from pathlib import Path

    from deeptoolbox.apps._files import open_network
    from deeptoolbox.vision._detector_io import is_saved_detector, load_detector

    path = Path(path).resolve()
    if is_saved_detector(path):
        return load_detector(path)
    return open_network(path)


def proposal_of(session: Any, file: str) -> dict[str, Any]:
    """The proposal for ``file``, or an OptionError (naming ``file`` when it is no image of
    the folder)."""
    if file not in session.files:
        raise OptionError(f"Labeler: `file` {file!r} is not an image of {session.folder} "
                          f"(it has {len(session.files)} images; names are relative to "
                          "the folder, with /).")  # fmt: skip
    proposal = next((p for p in session.proposals if p["file"] == file), None)
    if proposal is None:
        raise OptionError(f"Labeler: there is no proposal for {file!r}.")
    return proposal


def proposal_mask(session: Any, file: str) -> dict[str, Any]:
    """The proposed label map of ``file``: base64 bytes of class ids, row-major."""
    proposal = proposal_of(session, file)
    if proposal.get("kind") != "mask":
        raise OptionError(f"Labeler: the proposal for {file!r} is not a mask "
                          f"(it is a {proposal.get('kind', 'label')} proposal).")  # fmt: skip
    ids = session.proposal_masks[file]
    return {"file": file, "height": int(ids.shape[0]), "width": int(ids.shape[1]),
            "mask": base64.b64encode(ids.tobytes()).decode()}  # fmt: skip


def accept(session: Any, file: str, *, label: str | None = None,
           boxes: list[dict[str, Any]] | None = None, mask: str | None = None) -> dict:  # fmt: skip
    """Accept the proposal for ``file``, or the edited draft of it: ``label`` (a class
    proposal given another class), ``boxes`` (the boxes as edited) or ``mask`` (the label
    map as repainted, base64 class ids). Saved as hand-made labels are, undoably (undo puts
    the proposal back).

    Example:
        >>> import tempfile; from pathlib import Path
        >>> from PIL import Image
        >>> from deeptoolbox.apps._labeler import LabelSession
        >>> folder = Path(tempfile.mkdtemp()); Image.new("L", (8, 8)).save(folder / "a.png")
        >>> session = LabelSession(folder, classes=["car"])
        >>> session.proposals = [{"file": "a.png", "kind": "boxes", "confidence": 0.7, "boxes": [
        ...     {"x": 1, "y": 1, "width": 4, "height": 4, "label": "car", "score": 0.7}]}]
        >>> _ = accept(session, "a.png", boxes=[{"x": 2, "y": 1, "width": 4, "height": 4,
        ...                                      "label": "car"}])
        >>> session.boxes["a.png"][0]["x"], session.proposals
        (2.0, [])
        >>> _ = session.undo(); session.boxes.get("a.png"), len(session.proposals)
        ([], 1)
    """
    proposal = proposal_of(session, file)
    kind = proposal.get("kind", "label")
    if kind == "label":
        if boxes is not None or mask is not None:
            raise OptionError(f"Labeler: the proposal for {file!r} is a class; accept it with "
                              "a `label`, not boxes or a mask.")  # fmt: skip
        return session.set_labels([file], proposal["label"] if label is None else label)
    if label is not None or (boxes if kind == "mask" else mask) is not None:
        raise OptionError(f"Labeler: the proposal for {file!r} is {kind}; accept it with "
                          f"`{'boxes' if kind == 'boxes' else 'mask'}` (edited) or nothing.")  # fmt: skip
    before = list(session.proposals)
    if kind == "boxes":
        drafts = proposal["boxes"] if boxes is None else boxes
        session.set_boxes(file, [{k: b[k] for k in ("x", "y", "width", "height", "label")
                                  if k in b} for b in drafts])  # fmt: skip
    else:
        if mask is None:
            mask = base64.b64encode(session.proposal_masks[file].tobytes()).decode()
        session.set_mask(file, mask)
    session.proposals = [p for p in session.proposals if p is not proposal]
    change = session._history.pop()  # one undo step: the change and the proposal it took
    session._history.append(("proposal", (change, before)))
    return session.describe()


class AcceptRequest(BaseModel):
    """The body of ``POST /api/labeler/proposals/accept``: the file and, for an edited
    draft, its ``label``, ``boxes`` or ``mask``."""

    file: str
    label: str | None = None
    boxes: list[dict[str, Any]] | None = None
    mask: str | None = None


def add_proposal_routes(app: Any) -> None:
    """``/api/labeler/proposals/accept`` and ``/mask``, and ``/api/labeler/redo``."""
    from fastapi import Query

    def session() -> Any:
        if app.state.labeler is None:
            raise OptionError("Labeler: no folder is open; start it with `deeptoolbox label "
                              "FOLDER` or apps.labeler(folder).")  # fmt: skip
        return app.state.labeler

    @app.post("/api/labeler/proposals/accept", summary="accept a proposal, as edited; saved")
    def post_accept(request: AcceptRequest) -> dict[str, Any]:
        return accept(session(), request.file, label=request.label, boxes=request.boxes,
                      mask=request.mask)  # fmt: skip

    @app.get("/api/labeler/proposals/mask", summary="the proposed label map of one image")
    def get_proposal_mask(file: str = Query(...)) -> dict[str, Any]:
        return proposal_mask(session(), file)

    @app.post("/api/labeler/redo", summary="redo the last undone change")
    def post_redo() -> dict[str, Any]:
        return session().redo()
