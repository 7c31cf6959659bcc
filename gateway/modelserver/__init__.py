"""Model server (ONNX Runtime, scikit-learn, XGBoost) speaking KServe's V1 and V2 (Open Inference) REST protocols.

Entry points live in :mod:`gateway.modelserver.server` (``run``, ``create_app``,
``add_arguments``, ``main_from_args``); this package imports nothing heavy so that
``python -m gateway.modelserver`` starts answering liveness probes quickly.
"""
