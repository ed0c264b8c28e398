"""Logging for every command of this project (training, scoring, the ONNX export, the demo): one format, and the
HTTP clients' request lines kept out of the way."""

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("httpx", "httpx2", "urllib3")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(format=FORMAT, level=level, force=True)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
