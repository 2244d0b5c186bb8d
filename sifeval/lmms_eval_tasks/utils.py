"""lmms-eval imports this file by its path (``!function utils.<name>`` in the YAML files beside
it); the functions are sifthinker's, in ``sifeval.lmms_tasks``."""

from sifeval.lmms_tasks import (  # noqa: F401  (re-exported for the YAML files)
    cvbench_acc_2d,
    cvbench_acc_3d,
    cvbench_doc_to_target,
    cvbench_doc_to_text,
    cvbench_micro_accuracy,
    cvbench_process_results,
    cvbench_score,
    images_of,
    sat_all_orders_right,
    sat_doc_to_target,
    sat_doc_to_text,
    sat_images_of,
    sat_process_docs,
    sat_process_results,
    sat_score,
    vstar_direct_attributes,
    vstar_doc_to_target,
    vstar_doc_to_text,
    vstar_process_results,
    vstar_relative_position,
    vstar_score,
)
