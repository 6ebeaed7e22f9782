"""Training datasets: a folder of photos -> `DATASET/dataset.json` + `DATASET/images/NNNN.png`.

    schema.py   the format (dataset.json, images/), `load_dataset` for the trainer
    photos.py   reading any photo safely (limits, bombs, orientation, colour)
    crops.py    face detection and the crop to an aspect bucket
    tokens.py   the trigger token: syntax, common words, whole-token checks
    prepare.py  `prepare_dataset`: the whole pass, written atomically

The format is in docs/dataset.md. Privacy: dataset.json holds sha256 hashes of the source
files, never their paths or names (photos are numbered by their position in the sorted folder
listing), and the prepared PNGs carry no EXIF, ICC profile or text chunks.
"""

from fakestudio.dataset.crops import choose_bucket, crop_box, haar_face_detector
from fakestudio.dataset.photos import open_photo
from fakestudio.dataset.prepare import PrepareResult, prepare_dataset
from fakestudio.dataset.schema import (
    FORMAT,
    Consent,
    Dataset,
    DatasetImage,
    buckets_for,
    compute_fingerprint,
    load_dataset,
    nearest_bucket,
)
from fakestudio.dataset.tokens import is_whole_token, load_check_tokenizer

__all__ = [
    "FORMAT",
    "Consent",
    "Dataset",
    "DatasetImage",
    "PrepareResult",
    "buckets_for",
    "choose_bucket",
    "compute_fingerprint",
    "crop_box",
    "haar_face_detector",
    "is_whole_token",
    "load_check_tokenizer",
    "load_dataset",
    "nearest_bucket",
    "open_photo",
    "prepare_dataset",
]
