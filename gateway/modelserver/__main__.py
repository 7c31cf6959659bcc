"""``python -m gateway.modelserver --model PATH|URI [--format onnx|sklearn|xgboost] --name NAME --port PORT [--host HOST] [--cache-dir DIR]``."""

from __future__ import annotations

import argparse
import sys

from .server import add_arguments, main_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gateway modelserver",
        description="Serve an ONNX, scikit-learn or XGBoost model over KServe's V1 and V2 REST protocols.",
    )
    add_arguments(parser)
    return main_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
